"""``--on NAME``: run a verb on a cluster reached over SSH, from the laptop that holds the code.

The laptop side (``run``, ``ship``, ``ssh``, ``targets``, ``command``) ships the experiment's
code tree by content and streams the verb's output back; the cluster side (``agent``, ``tree``)
stores what it receives under the remote's ``code_root`` and runs the verb there with the
cluster's own ``experiments``. ``protocol`` is the wire format both sides share and
``provenance`` carries the laptop's git state into the cluster's launch. Nothing here keeps a
process alive between commands: OpenSSH's own master connection is the only thing that
outlives one, and it exits by itself.
"""
