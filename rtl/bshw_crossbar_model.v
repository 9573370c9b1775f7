// Behavioral model of one memristor crossbar macro (docs/arithmetic.md §2, §9, §15 "Crossbar macro
// interface"). A simulation model, not synthesizable: in silicon these are conductances and the
// column / row currents of an analog array. It answers the pins of bshw.macro.CrossbarMacroSignature
// with the exact integers of the contract:
//   forward read   y_j  = sum_i x_i W[i][j]             (fwd strobe; x = binary row drive)
//   backward read  dx_i = sum_j dy_j W[i][j]            (bwd strobe; dy on the (en, neg) code, §7)
//   update         W[row][j] += pot_j - dep_j, clamped to [WMIN, WMAX]   (upd, at that clock edge)
//   programming    W[prog_row][*] <= prog_wdata (prog_we); prog_rdata <= W[prog_row][*] (prog_re)
// Reads sample their inputs at the strobe's clock edge and see the levels before any update of that
// same edge; results appear LATENCY clocks after the strobe and hold until the next result. The
// array is a loop over a level memory, so this file does not grow with the array.
//
// DEVICE = 1: the memristor device model of §16 (paper Eqs. 7-9). Each device holds an unsigned
// conductance g (units 2^-FRAC of a level, 0 = G_min, GRANGE = G_max) and contributes g - GREF:
//   y_j  = ceil(sum_i x_i (g - GREF) / 2^FRAC)                       (exact for the comparator)
//   dx_i = sign(D) ceil(|D| / 2^FRAC), D = sum_j dy_j (g - GREF)     (sign and zero kept)
//   pulse: g += +-mean(g) + noise, clamped to [0, GRANGE]; mean = (CP - KP g + 2^(QS-1)) >> QS
//          (potentiation, Eq. 7) or (CD + KD g + 2^(QS-1)) >> QS (depression, Eq. 8); noise (Eq. 9)
//          from the column's N32 stream (24-step leap per pulse, seeded from SEED, LAYER as §3/§16)
//   read-back: level = (g - GREF + 2^(FRAC-1)) >> FRAC; programming: g = GREF + level 2^FRAC
// Stuck devices (STUCK_TH, §16) ignore pulses but still draw. D2D_FIX > 0 (device-to-device variation,
// §16): each device scales its mean step by its own factor, m = 2^16 + D2D_FIX v (v from the bytes of
// splitmix64((SEED << 32) + 2^29 + (LAYER << 24) + i), pot bytes 0-2, dep bytes 3-5), mean' =
// (mean m + 2^15) >> 16, before the noise. The variation source is behavioral.
module bshw_crossbar_model #(
    // integer-typed, so that a caller's unsigned literal (32'd127) still compares as a signed number
    parameter integer FAN_IN = 1, parameter integer FAN_OUT = 1, parameter integer WB = 8,
    parameter integer YW = 8, parameter integer DXW = 8, parameter integer WMIN = -128,
    parameter integer WMAX = 127, parameter integer LATENCY = 1, parameter integer BACKWARD = 1,
    parameter integer RW = 1, parameter INIT_FILE = "",
    // §16 device model (DEVICE = 0: the ideal integer levels above)
    parameter integer DEVICE = 0, parameter integer FRAC = 0, parameter integer GW = 1,
    parameter integer GRANGE = 0, parameter integer GREF = 0, parameter integer QS = 24,
    parameter [63:0] KP = 0, parameter [63:0] CP = 0, parameter [63:0] KD = 0, parameter [63:0] CD = 0,
    parameter integer GAMMA_FIX = 0, parameter [32:0] STUCK_TH = 0, parameter [63:0] SEED = 0,
    parameter integer LAYER = 1, parameter integer D2D_FIX = 0
) (
    input  wire                     clk,
    input  wire                     fwd,
    input  wire [FAN_IN-1:0]        x,
    output wire [FAN_OUT*YW-1:0]    y,
    input  wire                     bwd,
    input  wire [FAN_OUT-1:0]       dy_en,
    input  wire [FAN_OUT-1:0]       dy_neg,
    output wire [FAN_IN*DXW-1:0]    dx,
    input  wire                     upd,
    input  wire [RW-1:0]            upd_row,
    input  wire [FAN_OUT-1:0]       pot,
    input  wire [FAN_OUT-1:0]       dep,
    input  wire                     prog_we,
    input  wire                     prog_re,
    input  wire [RW-1:0]            prog_row,
    input  wire [FAN_OUT*WB-1:0]    prog_wdata,
    output wire [FAN_OUT*WB-1:0]    prog_rdata
);
    reg signed [WB-1:0] w [0:FAN_IN*FAN_OUT-1];  // W[i][j] at i * FAN_OUT + j

    // result pipelines: stage 0 is filled at the strobe's edge, stage LATENCY-1 drives the pins
    reg [FAN_OUT*YW-1:0] y_q  [0:LATENCY-1];
    reg [FAN_IN*DXW-1:0] dx_q [0:LATENCY-1];
    reg [FAN_OUT*WB-1:0] r_q  [0:LATENCY-1];
    reg [LATENCY-1:0]    y_v, dx_v, r_v;
    assign y = y_q[LATENCY-1];
    assign dx = dx_q[LATENCY-1];
    assign prog_rdata = r_q[LATENCY-1];

    integer i, j, s;
    reg signed [63:0] acc, lvl;

    // §16 device state: conductances, the columns' write-noise streams, the stuck devices
    localparam integer ND = DEVICE != 0 ? FAN_IN * FAN_OUT : 1;
    localparam integer NC = DEVICE != 0 ? FAN_OUT : 1;
    reg [31:0] g [0:ND-1];
    reg [31:0] nz [0:NC-1];
    reg        stuck [0:ND-1];
    localparam integer NV = DEVICE != 0 && D2D_FIX != 0 ? FAN_IN * FAN_OUT : 1;
    reg signed [63:0] mpot [0:NV-1];  // §16 d2d step factors, units of 2^-16
    reg signed [63:0] mdep [0:NV-1];
    reg [63:0] zd;
    reg signed [63:0] gi, mean, v, e, nmag, gnew;
    reg [31:0] st;
    integer t;

    function [63:0] splitmix64(input [63:0] z0);  // §3
        reg [63:0] z;
        begin
            z = z0 + 64'h9E3779B97F4A7C15;
            z = (z ^ (z >> 30)) * 64'hBF58476D1CE4E5B9;
            z = (z ^ (z >> 27)) * 64'h94D049BB133111EB;
            splitmix64 = z ^ (z >> 31);
        end
    endfunction

    function signed [63:0] pin_sum(input signed [63:0] a, input ceil_only);  // §16 pin rounding
        reg signed [63:0] m;
        begin
            if (ceil_only) pin_sum = -((-a) >>> FRAC);
            else begin
                m = a < 0 ? -a : a;
                m = (m + (64'sd1 <<< FRAC) - 1) >>> FRAC;
                pin_sum = a < 0 ? -m : m;
            end
        end
    endfunction

    initial begin
        y_v = 0; dx_v = 0; r_v = 0;
        for (s = 0; s < LATENCY; s = s + 1) begin
            y_q[s] = 0; dx_q[s] = 0; r_q[s] = 0;
        end
        for (i = 0; i < FAN_IN * FAN_OUT; i = i + 1) w[i] = 0;
        if (INIT_FILE != "") $readmemh(INIT_FILE, w);
        if (DEVICE != 0) begin
            for (i = 0; i < FAN_IN * FAN_OUT; i = i + 1) begin
                g[i] = GREF + (w[i] <<< FRAC);
                stuck[i] = (splitmix64((SEED << 32) + 64'h40000000 + (LAYER << 24) + i) >> 32) < STUCK_TH;
            end
            if (D2D_FIX != 0)
                for (i = 0; i < FAN_IN * FAN_OUT; i = i + 1) begin
                    zd = splitmix64((SEED << 32) + 64'h20000000 + (LAYER << 24) + i);
                    mpot[i] = 65536 + D2D_FIX * (2 * ({56'd0, zd[7:0]} + {56'd0, zd[15:8]} + {56'd0, zd[23:16]}) - 765);
                    mdep[i] = 65536 + D2D_FIX * (2 * ({56'd0, zd[31:24]} + {56'd0, zd[39:32]} + {56'd0, zd[47:40]}) - 765);
                end
            for (j = 0; j < FAN_OUT; j = j + 1) begin
                nz[j] = splitmix64((SEED << 32) + 64'h80000000 + (LAYER << 20) + j);
                if (nz[j] == 0) nz[j] = 1;
            end
        end
    end

    always @(posedge clk) begin
        // later stages take the stage before them when it holds a new result
        for (s = LATENCY - 1; s > 0; s = s - 1) begin
            if (y_v[s-1])  y_q[s]  <= y_q[s-1];
            if (dx_v[s-1]) dx_q[s] <= dx_q[s-1];
            if (r_v[s-1])  r_q[s]  <= r_q[s-1];
        end
        y_v <= {y_v, fwd};
        dx_v <= {dx_v, bwd & (BACKWARD != 0)};
        r_v <= {r_v, prog_re};
        if (fwd && DEVICE != 0)  // §16 forward: ceil(sum_i x_i (g - GREF) / 2^FRAC)
            for (j = 0; j < FAN_OUT; j = j + 1) begin
                acc = 0;
                for (i = 0; i < FAN_IN; i = i + 1)
                    if (x[i]) acc = acc + $signed({32'd0, g[i * FAN_OUT + j]}) - GREF;
                lvl = pin_sum(acc, 1'b1);
                y_q[0][j*YW +: YW] <= lvl[YW-1:0];
            end
        if (fwd && DEVICE == 0)  // §2 forward: every column current at once
            for (j = 0; j < FAN_OUT; j = j + 1) begin
                acc = 0;
                for (i = 0; i < FAN_IN; i = i + 1)
                    if (x[i]) acc = acc + w[i * FAN_OUT + j];
                y_q[0][j*YW +: YW] <= acc[YW-1:0];
            end
        if (bwd && BACKWARD != 0 && DEVICE != 0)  // §16 backward: sign(D) ceil(|D| / 2^FRAC)
            for (i = 0; i < FAN_IN; i = i + 1) begin
                acc = 0;
                for (j = 0; j < FAN_OUT; j = j + 1)
                    if (dy_en[j]) begin
                        gi = $signed({32'd0, g[i * FAN_OUT + j]}) - GREF;
                        acc = dy_neg[j] ? acc - gi : acc + gi;
                    end
                lvl = pin_sum(acc, 1'b0);
                dx_q[0][i*DXW +: DXW] <= lvl[DXW-1:0];
            end
        if (bwd && BACKWARD != 0 && DEVICE == 0)  // §2 backward: every row current at once, dy on the §7 wire code
            for (i = 0; i < FAN_IN; i = i + 1) begin
                acc = 0;
                for (j = 0; j < FAN_OUT; j = j + 1)
                    if (dy_en[j]) acc = dy_neg[j] ? acc - w[i * FAN_OUT + j] : acc + w[i * FAN_OUT + j];
                dx_q[0][i*DXW +: DXW] <= acc[DXW-1:0];
            end
        if (prog_re && DEVICE != 0)  // §16 read-back: the nearest level, half up
            for (j = 0; j < FAN_OUT; j = j + 1) begin
                lvl = ($signed({32'd0, g[prog_row * FAN_OUT + j]}) - GREF + (FRAC > 0 ? 64'sd1 <<< (FRAC - 1) : 0)) >>> FRAC;
                r_q[0][j*WB +: WB] <= lvl[WB-1:0];
            end
        if (prog_re && DEVICE == 0)
            for (j = 0; j < FAN_OUT; j = j + 1)
                r_q[0][j*WB +: WB] <= w[prog_row * FAN_OUT + j];
        if (upd && DEVICE != 0)  // §16: Eq. 7 / 8 mean step + Eq. 9 draw, clamped to [0, GRANGE]
            for (j = 0; j < FAN_OUT; j = j + 1)
                if (pot[j] != dep[j]) begin
                    gi = $signed({32'd0, g[upd_row * FAN_OUT + j]});
                    if (pot[j]) mean = (CP - KP * gi + (64'd1 << (QS - 1))) >> QS;
                    else mean = (CD + KD * gi + (64'd1 << (QS - 1))) >> QS;
                    if (D2D_FIX != 0)  // §16 d2d: this device's step, half up
                        mean = (mean * (pot[j] ? mpot[upd_row * FAN_OUT + j] : mdep[upd_row * FAN_OUT + j])
                                + 64'sd32768) >>> 16;
                    st = nz[j];
                    for (t = 0; t < 24; t = t + 1) st = {st[30:0], ^(st & 32'h80200003)};  // N32, §3
                    nz[j] <= st;
                    v = 2 * ({56'd0, st[7:0]} + {56'd0, st[15:8]} + {56'd0, st[23:16]}) - 765;
                    e = GAMMA_FIX * mean * v;
                    nmag = ((e < 0 ? -e : e) + 64'sd32768) >>> 16;
                    gnew = gi + (pot[j] ? mean : -mean) + (e < 0 ? -nmag : nmag);
                    if (gnew < 0) gnew = 0;
                    if (gnew > GRANGE) gnew = GRANGE;
                    if (!stuck[upd_row * FAN_OUT + j]) g[upd_row * FAN_OUT + j] <= gnew[31:0];
                end
        if (upd && DEVICE == 0)  // §9: one level per pulse, held inside the device range
            for (j = 0; j < FAN_OUT; j = j + 1)
                if (pot[j] || dep[j]) begin
                    lvl = w[upd_row * FAN_OUT + j];
                    lvl = lvl + (pot[j] ? 1 : 0) - (dep[j] ? 1 : 0);
                    if (lvl > WMAX) lvl = WMAX;
                    if (lvl < WMIN) lvl = WMIN;
                    w[upd_row * FAN_OUT + j] <= lvl[WB-1:0];
                end
        if (prog_we && DEVICE != 0)  // §16: programming sets the level's grid conductance
            for (j = 0; j < FAN_OUT; j = j + 1)
                g[prog_row * FAN_OUT + j] <= GREF + ($signed(prog_wdata[j*WB +: WB]) <<< FRAC);
        if (prog_we && DEVICE == 0)
            for (j = 0; j < FAN_OUT; j = j + 1)
                w[prog_row * FAN_OUT + j] <= prog_wdata[j*WB +: WB];
    end
endmodule
