"""Running the team's shared MLflow server: its accounts and permissions (team.users)."""
