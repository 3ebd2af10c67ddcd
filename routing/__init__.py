"""Who answers what: assignment, and (next) roles, hours, SLA and automation."""
