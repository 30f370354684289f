"""The images and docker compose on a user's checkout."""
