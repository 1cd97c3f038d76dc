"""netemu.client"""
