"""Private: the accelerated decoders behind :func:`events.codec.decode`.

Nothing outside :mod:`events` imports this package; the public contract is the codec.
"""
