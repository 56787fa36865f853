package ipam

// gapSet is the free addresses of one family of one pool, as an AVL tree of
// disjoint gaps keyed by their first address. A gap [start, end] holds every
// address of the pool between start and end that the pool may give (so with
// avoidBuggyIPs it may span a .255 and a .0, which are skipped); start and end
// are themselves addresses the pool may give.
//
// The tree has one node per gap: at most one per range of the pool plus one
// per assigned address, whatever the size of the pool. The height is
// O(log g) for g gaps, so every operation below is O(log g). Nodes keep their
// identity across rebalancing (deletion moves the successor node rather than
// copying its keys), so a caller may move a node's start or end in place as
// long as the gaps stay disjoint and ordered.
type gapSet struct {
	root *gap
	len  int
}

type gap struct {
	start, end  u128
	left, right *gap
	height      int8
}

// min returns the lowest gap, or nil.
func (s *gapSet) min() *gap {
	n := s.root
	if n == nil {
		return nil
	}
	for n.left != nil {
		n = n.left
	}
	return n
}

// floor returns the gap with the greatest start <= x, or nil.
func (s *gapSet) floor(x u128) *gap {
	var best *gap
	for n := s.root; n != nil; {
		if x.less(n.start) {
			n = n.left
		} else {
			best = n
			n = n.right
		}
	}
	return best
}

// ceil returns the gap with the least start >= x, or nil.
func (s *gapSet) ceil(x u128) *gap {
	var best *gap
	for n := s.root; n != nil; {
		if n.start.less(x) {
			n = n.right
		} else {
			best = n
			n = n.left
		}
	}
	return best
}

// insert adds the gap [start, end], which must not overlap another.
func (s *gapSet) insert(start, end u128) {
	s.root = insertGap(s.root, &gap{start: start, end: end, height: 1})
	s.len++
}

// delete removes the gap that starts at start, which must exist.
func (s *gapSet) delete(start u128) {
	s.root = deleteGap(s.root, start)
	s.len--
}

func height(n *gap) int8 {
	if n == nil {
		return 0
	}
	return n.height
}

func (n *gap) fix() { n.height = 1 + max(height(n.left), height(n.right)) }

func rotateRight(n *gap) *gap {
	l := n.left
	n.left, l.right = l.right, n
	n.fix()
	l.fix()
	return l
}

func rotateLeft(n *gap) *gap {
	r := n.right
	n.right, r.left = r.left, n
	n.fix()
	r.fix()
	return r
}

func rebalance(n *gap) *gap {
	n.fix()
	switch bf := height(n.left) - height(n.right); {
	case bf > 1:
		if height(n.left.left) < height(n.left.right) {
			n.left = rotateLeft(n.left)
		}
		return rotateRight(n)
	case bf < -1:
		if height(n.right.right) < height(n.right.left) {
			n.right = rotateRight(n.right)
		}
		return rotateLeft(n)
	}
	return n
}

func insertGap(n, g *gap) *gap {
	if n == nil {
		return g
	}
	if g.start.less(n.start) {
		n.left = insertGap(n.left, g)
	} else {
		n.right = insertGap(n.right, g)
	}
	return rebalance(n)
}

func deleteGap(n *gap, start u128) *gap {
	if n == nil {
		return nil
	}
	switch c := start.cmp(n.start); {
	case c < 0:
		n.left = deleteGap(n.left, start)
	case c > 0:
		n.right = deleteGap(n.right, start)
	default:
		if n.left == nil {
			return n.right
		}
		if n.right == nil {
			return n.left
		}
		succ := n.right
		for succ.left != nil {
			succ = succ.left
		}
		succ.right = deleteMin(n.right)
		succ.left = n.left
		return rebalance(succ)
	}
	return rebalance(n)
}

func deleteMin(n *gap) *gap {
	if n.left == nil {
		return n.right
	}
	n.left = deleteMin(n.left)
	return rebalance(n)
}
