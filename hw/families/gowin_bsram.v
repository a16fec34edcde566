
// bnncore's behavioural models of the Gowin block RAM (BSRAM) cells that Yosys' synth_gowin
// emits and its cell library leaves as black boxes: SP, SPX9 (single port: a ROM is one with
// WRE low), SDPB, SDPX9B (simple dual port) and DPB, DPX9B (dual port). hw/families/gowin.py
// expands the templates below the core (@...@).
//
// The memory is a line of 16,384 bits (x8 cells, INIT_RAM_nn 256 bits each) or 18,432 (x9
// cells, 288 bits), INIT_RAM_00's bit 0 first. A port of BIT_WIDTH W (1, 2, 4, 8, 16, 32; or
// 9, 18, 36) reads and writes the W bits from W * a on, a = AD >> log2(W's lanes); at 16 and 32
// bits (18, 36) AD[1:0] (AD[3:0]) enable the written bytes of 8 (9) bits. A port's output
// register loads on its clock edge with CE: a read sees the memory before this edge's writes;
// while the port writes it keeps its word (WRITE_MODE 0), takes the new one (1) or the old (2).
// READ_MODE 1 adds the pipeline register, loaded with OCE; RESET clears both, synchronously or
// not (RESET_MODE).
module __bnn_bsram #(parameter X9 = 0, parameter DW = 32, parameter WA = 32, parameter WB = 32,
                     parameter READ_A = 0, parameter READ_B = 0, parameter WMODE_A = 0, parameter WMODE_B = 0,
                     parameter RESET_MODE = "SYNC", parameter [18431:0] INIT = 0)
                    (input CLKA, input CEA, input WREA, input OCEA, input RESETA, input [13:0] ADA,
                     input [DW-1:0] DIA, output [DW-1:0] DOA,
                     input CLKB, input CEB, input WREB, input OCEB, input RESETB, input [13:0] ADB,
                     input [DW-1:0] DIB, output [DW-1:0] DOB);
    localparam SIZE = X9 ? 18432 : 16384;
    localparam BYTE = X9 ? 9 : 8;
    reg m [0:SIZE-1];
    integer i, ka, kb;
    initial for (i = 0; i < SIZE; i = i + 1) m[i] = INIT[i];

    function integer word(input [13:0] ad, input integer w);      // the word's first bit
        word = (ad >> ((w >= 32) ? 5 : (w >= 16) ? 4 : (w >= 8) ? 3 : (w == 4) ? 2 : (w == 2) ? 1 : 0)) * w;
    endfunction
    function enabled(input [13:0] ad, input integer w, input integer k);   // byte enables
        enabled = (w < 16) ? 1'b1 : ad[k / BYTE];
    endfunction
    function [DW-1:0] during(input integer mode, input we, input [13:0] ad, input integer w, input [DW-1:0] data,
                            input [DW-1:0] last);
        integer k;
        begin
            during = 0;
            for (k = 0; k < w; k = k + 1) during[k] = m[word(ad, w) + k];
            if (we && mode == 0) during = last;
            else if (we && mode == 1)
                for (k = 0; k < w; k = k + 1) if (enabled(ad, w, k)) during[k] = data[k];
        end
    endfunction

    reg [DW-1:0] qa = 0, pa = 0, qb = 0, pb = 0;
    wire arst_a = RESET_MODE == "ASYNC" && RESETA, arst_b = RESET_MODE == "ASYNC" && RESETB;
    always @(posedge CLKA or posedge arst_a)
        if (RESETA) begin qa <= 0; pa <= 0; end
        else begin
            if (CEA && WREA)
                for (ka = 0; ka < WA; ka = ka + 1) if (enabled(ADA, WA, ka)) m[word(ADA, WA) + ka] <= DIA[ka];
            if (CEA) qa <= during(WMODE_A, WREA, ADA, WA, DIA, qa);
            if (OCEA) pa <= qa;
        end
    always @(posedge CLKB or posedge arst_b)
        if (RESETB) begin qb <= 0; pb <= 0; end
        else begin
            if (CEB && WREB)
                for (kb = 0; kb < WB; kb = kb + 1) if (enabled(ADB, WB, kb)) m[word(ADB, WB) + kb] <= DIB[kb];
            if (CEB) qb <= during(WMODE_B, WREB, ADB, WB, DIB, qb);
            if (OCEB) pb <= qb;
        end
    assign DOA = READ_A ? pa : qa;
    assign DOB = READ_B ? pb : qb;
endmodule

// The cells: each template below stands for two, expanded with @CELL@ (its x8 and x9 names),
// @X9@ (0, 1), @DW@ (the data ports' width) and the INIT_RAM_nn parameters.
// @template
module @CELL@ (DO, DI, BLKSEL, AD, WRE, CLK, CE, OCE, RESET);
parameter READ_MODE = 1'b0;
parameter WRITE_MODE = 2'b00;
parameter BIT_WIDTH = @DW@;
parameter BLK_SEL = 3'b000;
parameter RESET_MODE = "SYNC";
@INIT_PARAMS@
output [@DW@-1:0] DO;
input [@DW@-1:0] DI;
input [2:0] BLKSEL;
input [13:0] AD;
input WRE, CLK, CE, OCE, RESET;
__bnn_bsram #(.X9(@X9@), .DW(@DW@), .WA(BIT_WIDTH), .WB(1), .READ_A(READ_MODE), .WMODE_A(WRITE_MODE),
              .RESET_MODE(RESET_MODE), .INIT(@INIT_CONCAT@))
    m (.CLKA(CLK), .CEA(CE), .WREA(WRE), .OCEA(OCE), .RESETA(RESET), .ADA(AD), .DIA(DI), .DOA(DO),
       .CLKB(CLK), .CEB(1'b0), .WREB(1'b0), .OCEB(1'b0), .RESETB(1'b0), .ADB(14'd0), .DIB({@DW@{1'b0}}), .DOB());
endmodule
// @template
module @CELL@ (CLKA, CEA, CLKB, CEB, OCE, RESETA, RESETB, ADA, ADB, DI, BLKSELA, BLKSELB, DO);
parameter READ_MODE = 1'b0;
parameter BIT_WIDTH_0 = @DW@;
parameter BIT_WIDTH_1 = @DW@;
parameter BLK_SEL_0 = 3'b000;
parameter BLK_SEL_1 = 3'b000;
parameter RESET_MODE = "SYNC";
@INIT_PARAMS@
input CLKA, CEA, CLKB, CEB, OCE, RESETA, RESETB;
input [13:0] ADA, ADB;
input [@DW@-1:0] DI;
input [2:0] BLKSELA, BLKSELB;
output [@DW@-1:0] DO;
__bnn_bsram #(.X9(@X9@), .DW(@DW@), .WA(BIT_WIDTH_0), .WB(BIT_WIDTH_1), .READ_B(READ_MODE), .RESET_MODE(RESET_MODE),
              .INIT(@INIT_CONCAT@))
    m (.CLKA(CLKA), .CEA(CEA), .WREA(1'b1), .OCEA(1'b0), .RESETA(RESETA), .ADA(ADA), .DIA(DI), .DOA(),
       .CLKB(CLKB), .CEB(CEB), .WREB(1'b0), .OCEB(OCE), .RESETB(RESETB), .ADB(ADB), .DIB({@DW@{1'b0}}), .DOB(DO));
endmodule
// @template
module @CELL@ (CLKA, CEA, CLKB, CEB, OCEA, OCEB, RESETA, RESETB, WREA, WREB, ADA, ADB, BLKSELA, BLKSELB, DIA, DIB,
               DOA, DOB);
parameter READ_MODE0 = 1'b0;
parameter READ_MODE1 = 1'b0;
parameter WRITE_MODE0 = 2'b00;
parameter WRITE_MODE1 = 2'b00;
parameter BIT_WIDTH_0 = @DW@;
parameter BIT_WIDTH_1 = @DW@;
parameter BLK_SEL_0 = 3'b000;
parameter BLK_SEL_1 = 3'b000;
parameter RESET_MODE = "SYNC";
@INIT_PARAMS@
input CLKA, CEA, CLKB, CEB, OCEA, OCEB, RESETA, RESETB, WREA, WREB;
input [13:0] ADA, ADB;
input [2:0] BLKSELA, BLKSELB;
input [@DW@-1:0] DIA, DIB;
output [@DW@-1:0] DOA, DOB;
__bnn_bsram #(.X9(@X9@), .DW(@DW@), .WA(BIT_WIDTH_0), .WB(BIT_WIDTH_1), .READ_A(READ_MODE0), .READ_B(READ_MODE1),
              .WMODE_A(WRITE_MODE0), .WMODE_B(WRITE_MODE1), .RESET_MODE(RESET_MODE), .INIT(@INIT_CONCAT@))
    m (.CLKA(CLKA), .CEA(CEA), .WREA(WREA), .OCEA(OCEA), .RESETA(RESETA), .ADA(ADA), .DIA(DIA), .DOA(DOA),
       .CLKB(CLKB), .CEB(CEB), .WREB(WREB), .OCEB(OCEB), .RESETB(RESETB), .ADB(ADB), .DIB(DIB), .DOB(DOB));
endmodule
