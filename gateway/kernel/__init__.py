"""Framework-free building blocks shared by every domain: money, clock, errors, events, ids.

Nothing here imports from `gateway` outside `gateway.kernel`, nor any web or database library.
"""
