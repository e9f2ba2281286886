"""The web console: alerts that explain themselves, rules edited with a live preview
on the archive. Built on the store's protocol; see watcher.web.app."""
