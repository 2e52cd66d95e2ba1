"""damagemap.data"""
