"""The connection machinery, on trio: the registry of this node's connections, the central
manager task and its route queue, the fan-out, one connection's reader and writer, the socket
transport and the hypercorn fixes it relies on, the group committer, the notifier, presence,
the membership cache, the inbox pruner and the message types.

Built on :mod:`trionet.core`, :mod:`trionet.store`, :mod:`trionet.backplane` and the leaves
(interfaces, settings, metrics); nothing here imports the services, the endpoints or the app
factory.
"""
