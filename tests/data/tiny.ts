# A hand-made UEA/UCR .ts file for tests/test_formats.py and tests/test_cli.py:
# 6 cases, 2 dimensions, lengths 3, 2, 4, 2, 3, 2, class labels "up" and "down".
@problemName TinyUpDown
@timeStamps false
@missing true
@univariate false
@dimensions 2
@equalLength false
@classLabel true up down
@data
1.0,2.0,3.0:0.5,0.25,0.125:up
4.0,5.0:-1.0,-2.0:down
0.0,1.5,3.0,4.5:2.0,2.0,2.0,2.0:up
# a comment inside the data, then a case padded with '?'
-3.0,-2.5,?,?:1e-1,2e-1,?,?:down

6,7,8:1,0,1:up
-1,-1:0.75,-0.75:down
