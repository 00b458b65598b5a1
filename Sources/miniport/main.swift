print("miniport: not built yet")
