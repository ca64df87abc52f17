"""Face and voice into one emotion: the product rule, BEL, and the likely speaker."""
