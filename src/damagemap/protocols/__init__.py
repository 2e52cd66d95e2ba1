"""damagemap.protocols"""
