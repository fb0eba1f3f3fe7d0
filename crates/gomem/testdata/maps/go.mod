module gomemmaps

go 1.19
