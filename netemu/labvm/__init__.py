"""netemu.labvm"""
