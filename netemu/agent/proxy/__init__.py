"""netemu.agent.proxy"""
