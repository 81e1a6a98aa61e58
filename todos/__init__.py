"""Todos: the items a signed-in person keeps track of."""
