"""netemu.emulator"""
