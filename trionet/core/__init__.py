"""Pure code: no trio, no sockets, no database. The wire codec, routing decisions, ids, resume
planning, rate limits, frame shapes, resend fingerprints, names and errors.

These modules import nothing of trionet but each other and :mod:`trionet.interfaces`
(``tests/test_layout.py`` checks it), so they can be tested, and reasoned about, alone.
"""
