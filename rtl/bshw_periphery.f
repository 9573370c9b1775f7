bshw_periphery.v
