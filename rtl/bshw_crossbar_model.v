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
module bshw_crossbar_model #(
    // integer-typed, so that a caller's unsigned literal (32'd127) still compares as a signed number
    parameter integer FAN_IN = 1, parameter integer FAN_OUT = 1, parameter integer WB = 8,
    parameter integer YW = 8, parameter integer DXW = 8, parameter integer WMIN = -128,
    parameter integer WMAX = 127, parameter integer LATENCY = 1, parameter integer BACKWARD = 1,
    parameter integer RW = 1, parameter INIT_FILE = ""
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
    initial begin
        y_v = 0; dx_v = 0; r_v = 0;
        for (s = 0; s < LATENCY; s = s + 1) begin
            y_q[s] = 0; dx_q[s] = 0; r_q[s] = 0;
        end
        for (i = 0; i < FAN_IN * FAN_OUT; i = i + 1) w[i] = 0;
        if (INIT_FILE != "") $readmemh(INIT_FILE, w);
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
        if (fwd)  // §2 forward: every column current at once
            for (j = 0; j < FAN_OUT; j = j + 1) begin
                acc = 0;
                for (i = 0; i < FAN_IN; i = i + 1)
                    if (x[i]) acc = acc + w[i * FAN_OUT + j];
                y_q[0][j*YW +: YW] <= acc[YW-1:0];
            end
        if (bwd && BACKWARD != 0)  // §2 backward: every row current at once, dy on the §7 wire code
            for (i = 0; i < FAN_IN; i = i + 1) begin
                acc = 0;
                for (j = 0; j < FAN_OUT; j = j + 1)
                    if (dy_en[j]) acc = dy_neg[j] ? acc - w[i * FAN_OUT + j] : acc + w[i * FAN_OUT + j];
                dx_q[0][i*DXW +: DXW] <= acc[DXW-1:0];
            end
        if (prog_re)
            for (j = 0; j < FAN_OUT; j = j + 1)
                r_q[0][j*WB +: WB] <= w[prog_row * FAN_OUT + j];
        if (upd)  // §9: one level per pulse, held inside the device range
            for (j = 0; j < FAN_OUT; j = j + 1)
                if (pot[j] || dep[j]) begin
                    lvl = w[upd_row * FAN_OUT + j];
                    lvl = lvl + (pot[j] ? 1 : 0) - (dep[j] ? 1 : 0);
                    if (lvl > WMAX) lvl = WMAX;
                    if (lvl < WMIN) lvl = WMIN;
                    w[upd_row * FAN_OUT + j] <= lvl[WB-1:0];
                end
        if (prog_we)
            for (j = 0; j < FAN_OUT; j = j + 1)
                w[prog_row * FAN_OUT + j] <= prog_wdata[j*WB +: WB];
    end
endmodule
