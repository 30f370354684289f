"""The errors a stage reports to its user as a message and a non-zero exit."""


class PipelineError(Exception):
    """A problem the user can fix: the message says what and where."""


class ParamsError(PipelineError):
    """params.yaml (or an override) does not match the schema."""


class DataError(PipelineError):
    """The input data cannot be used: a column, row or class is named."""


class TrackingError(PipelineError):
    """The MLflow tracking store cannot be reached or does not hold what we expect."""


class AuthenticationError(TrackingError):
    """A tracking server refused the login (HTTP 401, 403 before any work) or turned this
    address away (HTTP 429, after failed logins): the message names the account, never the
    password."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status: 401, 403 or 429


class StoppedError(PipelineError):
    """The process was told to stop (SIGTERM, SIGHUP) or lost the process that started it."""
