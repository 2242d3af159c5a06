"""Settings and default policies of yihu (一呼)."""
