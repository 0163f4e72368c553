"""Who may do what: users, roles on the fleet or one cluster, API tokens, the audit trail."""
