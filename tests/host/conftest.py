"""Host tests: no kernel needed (the kernel is tested in tests/vm, in a VM)."""

from hypothesis import settings

# Shared, noisy machines: a property test is about its answers, never its speed.
settings.register_profile("portowners", deadline=None, print_blob=True)
settings.load_profile("portowners")
