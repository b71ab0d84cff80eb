"""Outbound channels of the centre (WeChat Work group robots), each message delivered once."""
