"""netemu.agent.runtime"""
