"""Membership: members, groups and group membership kept in step with WeCom events."""
