"""netemu.store"""
