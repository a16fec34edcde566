	// --- bnncore's behavioural model of the block RAM (hw/families/ecp5_dp16kd_body.v), the body of
	// Yosys' black box DP16KD, for the block RAMs as Yosys maps them (brams_map_16kd.v: DP16KD in
	// widths 1 to 18 per port, or PDPW16KD: 36 bits written on port A, read on port B) and
	// hw/outreg.py gives them their output register. INITVAL_xx holds 16 words of 18 bits, each in
	// 20; in the dual-port mode port A reads on DOA, B on DOB. ecp5.py fills in initval's cases. ---
	// The block's 18,432 bits, 1,024 rows of 18 as INITVAL_xx holds them (16 rows of 20 bits, 18
	// used). A word of width w >= 9 at address n is bits [n * w, n * w + w); the narrow modes
	// (1, 2, 4 bits) pack the low 8 bits of each 9-bit word and leave its ninth (parity) bit.
	// 36 bits is the pseudo-dual-port mode: port A writes {DIB, DIA}, port B reads {DOB, DOA}.
	// Writes are byte-enabled in the 18- and 36-bit modes by the low address bits, as Yosys maps.
	function [319:0] initval(input integer k);
		case (k)
@INITVAL_CASES@
		default: initval = 320'bx;
		endcase
	endfunction
	reg [17:0] mem [0:1023];
	integer i;
	initial for (i = 0; i < 1024; i = i + 1) mem[i] = initval(i / 16) >> (20 * (i % 16));
	localparam PDP = DATA_WIDTH_A == 36;
	function integer lsb(input integer width);         // the address bits below a word
		case (width)
		1: lsb = 0; 2: lsb = 1; 4: lsb = 2; 9: lsb = 3; 18: lsb = 4; 36: lsb = 5;
		default: lsb = -1;
		endcase
	endfunction
	function integer pos(input integer width, input integer n, input integer k);   // bit k of word n
		pos = width >= 9 ? n * width + k : n / (8 / width) * 9 + n % (8 / width) * width + k;
	endfunction
	function [35:0] rd(input integer width, input [13:0] a);
		integer k;
		begin
			rd = lsb(width) < 0 ? {36{1'bx}} : 36'd0;
			for (k = 0; k < width && lsb(width) >= 0; k = k + 1) rd[k] = membit(pos(width, a >> lsb(width), k));
		end
	endfunction
	function membit(input integer p);
		reg [17:0] row;
		begin
			row = mem[p / 18];
			membit = row[p % 18];
		end
	endfunction
	function enabled(input integer width, input [13:0] a, input integer k);   // byte enables
		enabled = width >= 18 ? a[k / 9] : 1'b1;
	endfunction
	// what a port reads while it writes: nothing new (NORMAL), the old word or the new one
	function [35:0] during(input [8 * 15 - 1:0] mode, input we, input integer width, input [13:0] a,
	                       input [35:0] data, input [35:0] last);
		integer k;
		begin
			during = rd(width, a);
			if (we === 1'b1 && mode == "NORMAL") during = last;
			else if (we === 1'b1 && mode == "WRITETHROUGH")
				for (k = 0; k < width; k = k + 1) if (enabled(width, a, k)) during[k] = data[k];
		end
	endfunction
	wire [13:0] ada = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0};
	wire [13:0] adb = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0};
	wire [17:0] dia = {DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4,
	                   DIA3, DIA2, DIA1, DIA0};
	wire [17:0] dib = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4,
	                   DIB3, DIB2, DIB1, DIB0};
	wire [35:0] wa = PDP ? {dib, dia} : {18'd0, dia};
	wire [35:0] wb = {18'd0, dib};
	reg [35:0] read_a = 0, read_b = 0, out_a = 0, out_b = 0;
	integer ka, kb;
	initial if (PDP && REGMODE_A != REGMODE_B) begin
		$display("%m: pseudo-dual-port block RAM with REGMODE_A %s and REGMODE_B %s; expected the same", REGMODE_A, REGMODE_B);
		$finish;
	end
	initial if (lsb(DATA_WIDTH_A) < 0 || lsb(DATA_WIDTH_B) < 0 || DATA_WIDTH_B == 36 && !PDP) begin
		$display("%m: data widths %0d and %0d; the model knows 1, 2, 4, 9, 18 and 36 (A and B) only", DATA_WIDTH_A, DATA_WIDTH_B);
		$finish;
	end
	task write(input integer p, input value);
		mem[p / 18][p % 18] <= value;
	endtask
	// a read sees the memory before this edge's writes (the nonblocking writes land after it)
	always @(posedge CLKA) begin
		if (CEA === 1'b1 && WEA === 1'b1)
			for (ka = 0; ka < DATA_WIDTH_A; ka = ka + 1)
				if (enabled(DATA_WIDTH_A, ada, ka)) write(pos(DATA_WIDTH_A, ada >> lsb(DATA_WIDTH_A), ka), wa[ka]);
		if (!PDP) begin
			if (RSTA) read_a <= 0; else if (CEA) read_a <= during(WRITEMODE_A, WEA, DATA_WIDTH_A, ada, wa, read_a);
			if (RSTA) out_a <= 0; else if (OCEA) out_a <= read_a;
		end
	end
	always @(posedge CLKB) begin
		if (CEB === 1'b1 && WEB === 1'b1)
			for (kb = 0; kb < DATA_WIDTH_B; kb = kb + 1)
				if (enabled(DATA_WIDTH_B, adb, kb)) write(pos(DATA_WIDTH_B, adb >> lsb(DATA_WIDTH_B), kb), wb[kb]);
		if (RSTB) read_b <= 0; else if (CEB) read_b <= during(WRITEMODE_B, WEB, DATA_WIDTH_B, adb, wb, read_b);
		if (RSTB) out_b <= 0; else if (OCEB) out_b <= read_b;
	end
	wire [35:0] qa = REGMODE_A == "OUTREG" ? out_a : read_a;
	wire [35:0] qb = REGMODE_B == "OUTREG" ? out_b : read_b;
	assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2,
	        DOA1, DOA0} = PDP ? (DATA_WIDTH_B == 36 ? qb[17:0] : 18'd0) : qa[17:0];
	assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2,
	        DOB1, DOB0} = PDP && DATA_WIDTH_B == 36 ? qb[35:18] : qb[17:0];
