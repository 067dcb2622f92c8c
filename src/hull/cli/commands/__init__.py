"""The verbs of `hull`, grouped by resource: containers, images, system.

Each verb is a pair `args_<verb>(parser)` (declares its flags) and `cmd_<verb>(ctx, args)`
(runs it, returns the exit status); main.py imports only the module of the invoked verb.
"""
