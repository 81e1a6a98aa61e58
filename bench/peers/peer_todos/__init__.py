"""The todo app of the peers: the same model and list view as the app's todos."""
