"""Built-in agents. Each module registers its agents with the ``@agent`` decorator."""
