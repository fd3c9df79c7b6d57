"""Customer profiles: one per real person, with tags and a lifecycle stage."""
