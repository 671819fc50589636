"""The application layer: one module per use case, called by every door.

HTTP routes (service/api/routes/), the lookups that answer ahead of routing
(service/api/lookups.py) and any other door parse their input into the plain arguments a use
case takes, call it, and shape what it returns. A use case knows nothing of transports: it
takes the `Application` (service/application.py) and plain values, returns the contract's
answer models (common/models.py), and raises the errors of common/errors.py, which each door
maps to its own status codes.

- `user_list`: a user's list, from the chain of list sources (`list_sources`).
- `session_list`: a list for a visitor who has not signed in, from their session's items.
- `explain`: why an item ranks where it does for a user.
- `similar`: an item's similar items, a user's similar users.
- `trending`: the trending lists.
- `search`: items nearest in meaning to a text.
- `catalog`: items put, read, listed and deleted.
- `interactions`: users and the interactions they record.
- `keys`, `versions`, `experiments`, `health`: what operators do and ask.
"""
