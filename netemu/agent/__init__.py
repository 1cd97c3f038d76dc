"""netemu.agent"""
