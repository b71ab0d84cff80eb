"""The district's bulletins: daily patrol bulletin and monthly bulletin (see docs/bulletins.md)."""
