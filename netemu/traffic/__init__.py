"""netemu.traffic"""
