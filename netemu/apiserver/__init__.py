"""netemu.apiserver"""
