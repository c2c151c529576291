"""The command line: ``main`` (the group, its lazy command table, exit codes), ``context``
(what the commands share) and one module per verb family holding its commands and their
rendering (``launch_cmd``, ``watch_cmd``, ``logs_cmd``, ``results_cmd``, ``manage_cmd``,
``config_cmd``); ``render`` keeps the consoles and the cells several families share."""
