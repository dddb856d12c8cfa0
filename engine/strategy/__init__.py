"""The strategy API plug-ins are written against: context, targets, guard, registry.

Depends on the kernel only.
"""
