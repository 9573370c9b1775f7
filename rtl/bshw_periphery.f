bshw_periphery.v
bshw_host.v
