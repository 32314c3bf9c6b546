"""What a notebook opens first: the parameters, secret references, the session (lazy servers and
AWS clients).  Imports core, mysql and aws."""
