"""The connection machinery, on trio: the manager (who is connected, fan-out), one
connection's reader and writer, the socket transport and the hypercorn fixes it relies on, the
group committer, presence, the membership cache, the inbox pruner and the message types.

Built on :mod:`trionet.core`, :mod:`trionet.store` and the leaves (interfaces, settings,
metrics); nothing here imports the services, the endpoints or the app factory.
"""
