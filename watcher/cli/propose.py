"""`watcher feeds add URL` chooses with watcher.fetch.propose, which the web console
shares (the console may not import the CLI)."""

from watcher.fetch.propose import Proposal, propose

__all__ = ["Proposal", "propose"]
