"""netemu.cli"""
