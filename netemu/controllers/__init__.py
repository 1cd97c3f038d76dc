"""netemu.controllers"""
