"""The reference device client: register with the portal, sync releases through TUF, scan.

It depends on ``engine`` (codec, analysis, matching), ``tuf.ngclient`` and ``requests`` and on
nothing else of ours. ``python -m client --help`` lists the commands; ``client.state``
describes the state folder.
"""
