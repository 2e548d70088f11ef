"""The review queue: capture what the line saw, let operators resolve it into labels."""
