
// bnncore's behavioural models of the Gowin block RAM (BSRAM) cells that Yosys' synth_gowin
// emits and its cell library leaves as black boxes: SP, SPX9 (single port: a ROM is one with
// WRE low) and SDPB, SDPX9B (simple dual port). hw/families/gowin.py expands the @...@ lines.
//
// The memory is a line of 16,384 bits (x8 cells, INIT_RAM_nn 256 bits each) or 18,432 (x9
// cells, 288 bits), INIT_RAM_00's bit 0 first. A port of BIT_WIDTH W (1, 2, 4, 8, 16, 32; or
// 9, 18, 36) reads and writes the W bits from W * a on, a = AD >> log2(W's lanes); at 16 and 32
// bits (18, 36) AD[1:0] (AD[3:0]) enable the written bytes of 8 (9) bits. The output register
// loads on the clock edge with CE, keeps its word on a write (WRITE_MODE 0), takes the new one
// (1) or the old (2); READ_MODE 1 adds the pipeline register, loaded with OCE; RESET clears
// them, synchronously or not (RESET_MODE). The simple dual-port cells (SINGLE 0) read the old
// word at a write's address.
module __bnn_bsram #(parameter X9 = 0, parameter SINGLE = 1, parameter WW = 32, parameter RW = 32, parameter DW = 32,
                     parameter READ_MODE = 0, parameter WRITE_MODE = 0, parameter RESET_MODE = "SYNC",
                     parameter [18431:0] INIT = 0)
                    (input CLKW, input CEW, input WRE, input [13:0] ADW, input [DW-1:0] DI,
                     input CLKR, input CER, input OCE, input RESET, input [13:0] ADR, output [DW-1:0] DO);
    localparam SIZE = X9 ? 18432 : 16384;
    localparam BYTE = X9 ? 9 : 8;
    reg m [0:SIZE-1];
    reg [DW-1:0] q = 0, p = 0;
    integer i;
    initial for (i = 0; i < SIZE; i = i + 1) m[i] = INIT[i];

    function integer lanes_log2(input integer w);
        lanes_log2 = (w >= 32) ? 5 : (w >= 16) ? 4 : (w >= 8) ? 3 : (w == 4) ? 2 : (w == 2) ? 1 : 0;
    endfunction
    function integer word(input [13:0] ad, input integer w);
        word = (ad >> lanes_log2(w)) * w;
    endfunction
    function enabled(input [13:0] ad, input integer w, input integer bit_);
        enabled = (w < 16) ? 1'b1 : ad[bit_ / BYTE];
    endfunction

    wire [DW-1:0] old_word;
    genvar g;
    generate for (g = 0; g < DW; g = g + 1) begin : rd
        assign old_word[g] = (g < RW) ? m[word(ADR, RW) + g] : 1'b0;
    end endgenerate

    wire [DW-1:0] new_word;
    generate for (g = 0; g < DW; g = g + 1) begin : nw
        assign new_word[g] = (g < RW) ? ((WRE && CEW && enabled(ADW, WW, g) && g < WW) ? DI[g] : m[word(ADR, RW) + g])
                                      : 1'b0;
    end endgenerate

    always @(posedge CLKW) if (CEW && WRE)
        for (i = 0; i < WW; i = i + 1)
            if (enabled(ADW, WW, i)) m[word(ADW, WW) + i] <= DI[i];

    generate if (RESET_MODE == "ASYNC") begin : arst
        always @(posedge CLKR or posedge RESET)
            if (RESET) begin q <= 0; p <= 0; end
            else begin
                if (CER) q <= (SINGLE && WRE && CEW) ? (WRITE_MODE == 0 ? q : WRITE_MODE == 1 ? new_word : old_word) : old_word;
                if (OCE) p <= q;
            end
    end else begin : srst
        always @(posedge CLKR)
            if (RESET) begin q <= 0; p <= 0; end
            else begin
                if (CER) q <= (SINGLE && WRE && CEW) ? (WRITE_MODE == 0 ? q : WRITE_MODE == 1 ? new_word : old_word) : old_word;
                if (OCE) p <= q;
            end
    end endgenerate
    assign DO = READ_MODE ? p : q;
endmodule

module SP (DO, DI, BLKSEL, AD, WRE, CLK, CE, OCE, RESET);
parameter READ_MODE = 1'b0;
parameter WRITE_MODE = 2'b00;
parameter BIT_WIDTH = 32;
parameter BLK_SEL = 3'b000;
parameter RESET_MODE = "SYNC";
@INIT_PARAMS_256@
output [31:0] DO;
input [31:0] DI;
input [2:0] BLKSEL;
input [13:0] AD;
input WRE, CLK, CE, OCE, RESET;
__bnn_bsram #(.X9(0), .WW(BIT_WIDTH), .RW(BIT_WIDTH), .DW(32), .READ_MODE(READ_MODE), .WRITE_MODE(WRITE_MODE),
              .RESET_MODE(RESET_MODE), .INIT(@INIT_CONCAT@))
    m (.CLKW(CLK), .CEW(CE), .WRE(WRE), .ADW(AD), .DI(DI), .CLKR(CLK), .CER(CE), .OCE(OCE), .RESET(RESET),
       .ADR(AD), .DO(DO));
endmodule

module SPX9 (DO, DI, BLKSEL, AD, WRE, CLK, CE, OCE, RESET);
parameter READ_MODE = 1'b0;
parameter WRITE_MODE = 2'b00;
parameter BIT_WIDTH = 36;
parameter BLK_SEL = 3'b000;
parameter RESET_MODE = "SYNC";
@INIT_PARAMS_288@
output [35:0] DO;
input [35:0] DI;
input [2:0] BLKSEL;
input [13:0] AD;
input WRE, CLK, CE, OCE, RESET;
__bnn_bsram #(.X9(1), .WW(BIT_WIDTH), .RW(BIT_WIDTH), .DW(36), .READ_MODE(READ_MODE), .WRITE_MODE(WRITE_MODE),
              .RESET_MODE(RESET_MODE), .INIT(@INIT_CONCAT@))
    m (.CLKW(CLK), .CEW(CE), .WRE(WRE), .ADW(AD), .DI(DI), .CLKR(CLK), .CER(CE), .OCE(OCE), .RESET(RESET),
       .ADR(AD), .DO(DO));
endmodule

module SDPB (CLKA, CEA, CLKB, CEB, OCE, RESETA, RESETB, ADA, ADB, DI, BLKSELA, BLKSELB, DO);
parameter READ_MODE = 1'b0;
parameter BIT_WIDTH_0 = 32;
parameter BIT_WIDTH_1 = 32;
parameter BLK_SEL_0 = 3'b000;
parameter BLK_SEL_1 = 3'b000;
parameter RESET_MODE = "SYNC";
@INIT_PARAMS_256@
input CLKA, CEA, CLKB, CEB, OCE, RESETA, RESETB;
input [13:0] ADA, ADB;
input [31:0] DI;
input [2:0] BLKSELA, BLKSELB;
output [31:0] DO;
__bnn_bsram #(.X9(0), .SINGLE(0), .WW(BIT_WIDTH_0), .RW(BIT_WIDTH_1), .DW(32), .READ_MODE(READ_MODE), .RESET_MODE(RESET_MODE),
              .INIT(@INIT_CONCAT@))
    m (.CLKW(CLKA), .CEW(CEA), .WRE(1'b1), .ADW(ADA), .DI(DI), .CLKR(CLKB), .CER(CEB), .OCE(OCE), .RESET(RESETB),
       .ADR(ADB), .DO(DO));
endmodule

module SDPX9B (CLKA, CEA, CLKB, CEB, OCE, RESETA, RESETB, ADA, ADB, BLKSELA, BLKSELB, DI, DO);
parameter READ_MODE = 1'b0;
parameter BIT_WIDTH_0 = 36;
parameter BIT_WIDTH_1 = 36;
parameter BLK_SEL_0 = 3'b000;
parameter BLK_SEL_1 = 3'b000;
parameter RESET_MODE = "SYNC";
@INIT_PARAMS_288@
input CLKA, CEA, CLKB, CEB, OCE, RESETA, RESETB;
input [13:0] ADA, ADB;
input [35:0] DI;
input [2:0] BLKSELA, BLKSELB;
output [35:0] DO;
__bnn_bsram #(.X9(1), .SINGLE(0), .WW(BIT_WIDTH_0), .RW(BIT_WIDTH_1), .DW(36), .READ_MODE(READ_MODE), .RESET_MODE(RESET_MODE),
              .INIT(@INIT_CONCAT@))
    m (.CLKW(CLKA), .CEW(CEA), .WRE(1'b1), .ADW(ADA), .DI(DI), .CLKR(CLKB), .CER(CEB), .OCE(OCE), .RESET(RESETB),
       .ADR(ADB), .DO(DO));
endmodule
