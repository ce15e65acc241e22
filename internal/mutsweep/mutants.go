package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"regexp"
	"sort"
	"strings"
)

// A Mutant is one small change to one function, aimed at a check that is
// skipped in silence. All the mutants of a package are compiled into one
// test binary (mutant schemata): each is guarded by its number N and is live
// only when GDPNET_MUTANT=N, so a sweep builds once and runs the tests once
// per mutant. ID names a mutant stably (file:line:col:op), so that a stopped
// sweep resumes and one mutant can be run again after a test was added.
type Mutant struct {
	ID     string
	File   string // path as given to Mutants
	Func   string // Func or Type.Method
	Op     string
	N      int // the GDPNET_MUTANT value that makes it live (set by Number)
	Orig   string
	Change string // what the mutant does, for the report

	start, end int      // the node replaced
	subs       [][2]int // the parts of it kept, rendered with their own mutants
	// wrap builds the replacement from the rendered parts; n is N.
	wrap func(n int, parts []string) string
}

// Operators:
//
//	skip-if     if C { ...return... }        the guard never fires
//	skip-case   switch { case C: ...return }  the case never matches
//	skip-else   if C {...} else {...return}  the else guard never fires
//	drop-or     if A || B { ...return... }   one of two checks dropped (-left: A, -right: B)
//	boundary    < ↔ <=, > ↔ >= in a guard    off by one at a limit
//	call-true   Equal/Verify/Valid…(…) in a guard's condition is true
//	ret-nil     return f(…) in a function returning error: f's error dropped
var allOps = []string{"skip-if", "skip-case", "skip-else", "drop-or", "boundary", "call-true", "ret-nil"}

var errName = regexp.MustCompile(`(?i)err|wrap`)

var boolCallName = regexp.MustCompile(`^(Equal|ConstantTimeCompare|Verify.*|verify.*|Valid.*|valid.*|Is[A-Z].*|is[A-Z].*|Has.*|has.*|Contains|Allowed|allowed|Permits|permits|Match.*|match.*|Check.*|check.*)$`)

var boundaryFunc = map[token.Token]string{token.LSS: "LT", token.LEQ: "LE", token.GTR: "GT", token.GEQ: "GE"}
var boundaryTo = map[token.Token]string{token.LSS: "<=", token.LEQ: "<", token.GTR: ">=", token.GEQ: ">"}

// Mutants lists the mutants of one file's functions whose names match funcs
// (nil: all), with the operators in ops (nil: all; drop-or names both).
func Mutants(path string, src []byte, funcs *regexp.Regexp, ops map[string]bool) ([]Mutant, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, src, parser.ParseComments)
	if err != nil {
		return nil, err
	}
	want := func(op string) bool { return ops == nil || ops[op] }
	off := func(p token.Pos) int { return fset.Position(p).Offset }
	text := func(n ast.Node) string { return string(src[off(n.Pos()):off(n.End())]) }
	var out []Mutant
	add := func(fn, op string, n ast.Node, change string, subs [][2]int, wrap func(int, []string) string) {
		p := fset.Position(n.Pos())
		if subs == nil {
			subs = [][2]int{{off(n.Pos()), off(n.End())}}
		}
		out = append(out, Mutant{
			ID: fmt.Sprintf("%s:%d:%d:%s", path, p.Line, p.Column, op), File: path, Func: fn, Op: op,
			Orig: text(n), Change: change, start: off(n.Pos()), end: off(n.End()), subs: subs, wrap: wrap,
		})
	}
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Body == nil {
			continue
		}
		name := fd.Name.Name
		if fd.Recv != nil && len(fd.Recv.List) == 1 {
			name = recvName(fd.Recv.List[0].Type) + "." + name
		}
		if funcs != nil && !funcs.MatchString(name) {
			continue
		}
		returnsErr, nres := false, 0
		if fd.Type.Results != nil {
			for _, r := range fd.Type.Results.List {
				nres += max(len(r.Names), 1)
			}
			last := fd.Type.Results.List[len(fd.Type.Results.List)-1]
			if id, ok := last.Type.(*ast.Ident); ok && id.Name == "error" {
				returnsErr = true
			}
		}
		// Returns that are a guard's own answer (a statement of an if's or
		// a case's body) are mutated by skip-if and skip-case.
		guarded := map[*ast.ReturnStmt]bool{}
		var lits []*ast.FuncLit
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			var body []ast.Stmt
			switch s := n.(type) {
			case *ast.FuncLit:
				lits = append(lits, s)
			case *ast.IfStmt:
				body = s.Body.List
			case *ast.CaseClause:
				body = s.Body
			}
			for _, st := range body {
				if r, ok := st.(*ast.ReturnStmt); ok {
					guarded[r] = true
				}
			}
			return true
		})
		// Nested function literals have results of their own: ret-nil is
		// applied only to the declaration's returns.
		inLit := func(p token.Pos) bool {
			for _, fl := range lits {
				if p >= fl.Pos() && p < fl.End() {
					return true
				}
			}
			return false
		}
		// callTrue mutates the calls whose value is a condition's truth (its
		// operands through !, && and ||: bool for certain) and whose name
		// says they check something.
		var callTrue func(cond, e ast.Expr, bodyExits bool)
		callTrue = func(cond, e ast.Expr, bodyExits bool) {
			switch x := e.(type) {
			case *ast.ParenExpr:
				callTrue(cond, x.X, bodyExits)
			case *ast.UnaryExpr:
				if x.Op == token.NOT {
					callTrue(cond, x.X, bodyExits)
				}
			case *ast.BinaryExpr:
				if x.Op == token.LAND || x.Op == token.LOR {
					callTrue(cond, x.X, bodyExits)
					callTrue(cond, x.Y, bodyExits)
				}
			case *ast.CallExpr:
				if !want("call-true") || !boolCallName.MatchString(callName(x)) {
					return
				}
				// A call that is the whole condition of a guard is already
				// mutated by skip-if (!call), or makes the guard always
				// fire (call), which any test notices.
				whole := unparen(cond) == ast.Expr(x)
				if u, ok := unparen(cond).(*ast.UnaryExpr); ok && u.Op == token.NOT && unparen(u.X) == ast.Expr(x) {
					whole = true
				}
				if whole && bodyExits {
					return
				}
				add(name, "call-true", x, "true", nil, func(n int, p []string) string {
					return fmt.Sprintf("(mutsweepOn(%d) || %s)", n, p[0])
				})
			}
		}
		// guard mutates one condition guarding a body: an if's, or a case
		// of a switch with no tag.
		guard := func(cond ast.Expr, bodyExits, elseExits bool, skipOp string) {
			c := text(cond)
			callTrue(cond, cond, bodyExits)
			if want(skipOp) && bodyExits {
				add(name, skipOp, cond, "never true", nil, func(n int, p []string) string {
					return fmt.Sprintf("((%s) && !mutsweepOn(%d))", p[0], n)
				})
			}
			if want("skip-else") && elseExits {
				add(name, "skip-else", cond, "always true", nil, func(n int, p []string) string {
					return fmt.Sprintf("((%s) || mutsweepOn(%d))", p[0], n)
				})
			}
			if be, ok := unparen(cond).(*ast.BinaryExpr); ok && be.Op == token.LOR && want("drop-or") && bodyExits {
				add(name, "drop-or-left", be.X, "dropped from "+c, nil, func(n int, p []string) string {
					return fmt.Sprintf("(!mutsweepOn(%d) && (%s))", n, p[0])
				})
				add(name, "drop-or-right", be.Y, "dropped from "+c, nil, func(n int, p []string) string {
					return fmt.Sprintf("(!mutsweepOn(%d) && (%s))", n, p[0])
				})
			}
			ast.Inspect(cond, func(x ast.Node) bool {
				switch e := x.(type) {
				case *ast.FuncLit:
					return false
				case *ast.BinaryExpr:
					fn, ok := boundaryFunc[e.Op]
					if !ok || !want("boundary") {
						return true
					}
					// The text between the operands (the operator, and any
					// line break) is dropped; its line breaks are kept so
					// that the compiler's line numbers stay the source's.
					gap := strings.Repeat("\n", strings.Count(string(src[off(e.X.End()):off(e.Y.Pos())]), "\n"))
					add(name, "boundary", e, e.Op.String()+" → "+boundaryTo[e.Op],
						[][2]int{{off(e.X.Pos()), off(e.X.End())}, {off(e.Y.Pos()), off(e.Y.End())}},
						func(n int, p []string) string {
							return fmt.Sprintf("mutsweep%s(%d, %s, %s%s)", fn, n, p[0], gap, p[1])
						})
				}
				return true
			})
		}
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			switch s := n.(type) {
			case *ast.IfStmt:
				elseExits := false
				if eb, ok := s.Else.(*ast.BlockStmt); ok {
					elseExits = exits(eb.List)
				}
				guard(s.Cond, exits(s.Body.List), elseExits, "skip-if")
			case *ast.SwitchStmt:
				if s.Tag != nil {
					return true
				}
				for _, st := range s.Body.List {
					cc := st.(*ast.CaseClause)
					for _, e := range cc.List {
						guard(e, exits(cc.Body), false, "skip-case")
					}
				}
			case *ast.ReturnStmt:
				// One value per result (not return f() of a function that
				// returns several), and not an error built here (errors.New,
				// fmt.Errorf, newErr…): that is a guard's own answer.
				if !want("ret-nil") || !returnsErr || len(s.Results) != nres || inLit(s.Pos()) || guarded[s] {
					return true
				}
				last := s.Results[len(s.Results)-1]
				if c, ok := last.(*ast.CallExpr); ok && !isErrorsNew(last) && !errName.MatchString(callName(c)) {
					add(name, "ret-nil", last, "its error dropped", nil, func(n int, p []string) string {
						return fmt.Sprintf("mutsweepNilErr(%d, %s)", n, p[0])
					})
				}
			}
			return true
		})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].start < out[j].start })
	return out, nil
}

// Render returns src with the mutants compiled in, each live only when
// mutsweepOn(its N) is true. The mutants must come from Mutants(src).
// Mutants nest: a skip-if's condition keeps the boundary mutant inside it.
func Render(src []byte, ms []Mutant) string {
	return render(src, 0, len(src), ms)
}

func render(src []byte, lo, hi int, ms []Mutant) string {
	var in []int
	for i, m := range ms {
		if m.start >= lo && m.end <= hi {
			in = append(in, i)
		}
	}
	// Outermost first; of mutants of the same node, the first listed.
	sort.SliceStable(in, func(a, b int) bool {
		ma, mb := ms[in[a]], ms[in[b]]
		if ma.start != mb.start {
			return ma.start < mb.start
		}
		return ma.end > mb.end
	})
	var b strings.Builder
	pos := lo
	for _, i := range in {
		m := ms[i]
		if m.start < pos {
			continue // inside one already rendered
		}
		b.Write(src[pos:m.start])
		rest := make([]Mutant, 0, len(ms)-1)
		rest = append(rest, ms[:i]...)
		rest = append(rest, ms[i+1:]...)
		parts := make([]string, len(m.subs))
		for k, s := range m.subs {
			parts[k] = render(src, s[0], s[1], rest)
		}
		b.WriteString(m.wrap(m.N, parts))
		pos = m.end
	}
	b.Write(src[pos:hi])
	return b.String()
}

// Helper is the file added to the package being swept: the switches the
// rendered mutants call.
func Helper(pkg string) string {
	return `package ` + pkg + `

import (
	"cmp"
	"os"
	"strconv"
)

var mutsweepLive, _ = strconv.Atoi(os.Getenv("GDPNET_MUTANT"))

func mutsweepOn(n int) bool { return n == mutsweepLive }

func mutsweepNilErr(n int, err error) error {
	if n == mutsweepLive {
		return nil
	}
	return err
}

func mutsweepLT[T cmp.Ordered](n int, a, b T) bool {
	if n == mutsweepLive {
		return a <= b
	}
	return a < b
}

func mutsweepLE[T cmp.Ordered](n int, a, b T) bool {
	if n == mutsweepLive {
		return a < b
	}
	return a <= b
}

func mutsweepGT[T cmp.Ordered](n int, a, b T) bool {
	if n == mutsweepLive {
		return a >= b
	}
	return a > b
}

func mutsweepGE[T cmp.Ordered](n int, a, b T) bool {
	if n == mutsweepLive {
		return a > b
	}
	return a >= b
}
`
}

// exits reports whether a body leaves the function or the loop: a guard
// whose body does is a check (an error return, a drop with continue).
func exits(body []ast.Stmt) bool {
	found := false
	ast.Inspect(&ast.BlockStmt{List: body}, func(n ast.Node) bool {
		switch s := n.(type) {
		case *ast.FuncLit:
			return false
		case *ast.ReturnStmt:
			found = true
		case *ast.BranchStmt:
			if s.Tok == token.CONTINUE || s.Tok == token.BREAK || s.Tok == token.GOTO {
				found = true
			}
		}
		return !found
	})
	return found
}

func unparen(e ast.Expr) ast.Expr {
	for {
		p, ok := e.(*ast.ParenExpr)
		if !ok {
			return e
		}
		e = p.X
	}
}

func callName(c *ast.CallExpr) string {
	switch f := c.Fun.(type) {
	case *ast.Ident:
		return f.Name
	case *ast.SelectorExpr:
		return f.Sel.Name
	}
	return ""
}

func isErrorsNew(e ast.Expr) bool {
	c, ok := e.(*ast.CallExpr)
	if !ok {
		return false
	}
	s, ok := c.Fun.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	x, ok := s.X.(*ast.Ident)
	return ok && ((x.Name == "errors" && s.Sel.Name == "New") || (x.Name == "fmt" && s.Sel.Name == "Errorf"))
}

func recvName(t ast.Expr) string {
	switch r := t.(type) {
	case *ast.StarExpr:
		return recvName(r.X)
	case *ast.Ident:
		return r.Name
	case *ast.IndexExpr:
		return recvName(r.X)
	case *ast.IndexListExpr:
		return recvName(r.X)
	}
	return "?"
}
