package store

import (
	"bytes"
	"fmt"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

var boltBucket = []byte("gdpnet")

type boltEngine struct {
	db *bolt.DB
}

func openBolt(dir string) (engine, error) {
	db, err := bolt.Open(filepath.Join(dir, "capsules.bolt"), 0o600, &bolt.Options{
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("open bbolt at %s: %w", dir, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(boltBucket)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("open bbolt at %s: %w", dir, err)
	}
	return &boltEngine{db: db}, nil
}

func (e *boltEngine) get(key []byte) ([]byte, error) {
	var out []byte
	err := e.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(boltBucket).Get(key); v != nil {
			out = append([]byte{}, v...)
		}
		return nil
	})
	if err == nil && out == nil {
		return nil, errNotFound
	}
	return out, err
}

func (e *boltEngine) scan(lo, hi []byte, fn func(k, v []byte) bool) error {
	return e.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(boltBucket).Cursor()
		for k, v := c.Seek(lo); k != nil && bytes.Compare(k, hi) < 0; k, v = c.Next() {
			if !fn(k, v) {
				break
			}
		}
		return nil
	})
}

func (e *boltEngine) last(lo, hi []byte) ([]byte, []byte, error) {
	var k, v []byte
	err := e.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(boltBucket).Cursor()
		ck, cv := c.Seek(hi)
		if ck == nil {
			ck, cv = c.Last()
		} else {
			ck, cv = c.Prev()
		}
		if ck != nil && bytes.Compare(ck, lo) >= 0 && bytes.Compare(ck, hi) < 0 {
			k, v = append([]byte(nil), ck...), append([]byte{}, cv...)
		}
		return nil
	})
	if err == nil && k == nil {
		return nil, nil, errNotFound
	}
	return k, v, err
}

func (e *boltEngine) commit(b *writeBatch) error {
	return e.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(boltBucket)
		for _, o := range b.ops {
			switch o.kind {
			case opSet:
				if err := bk.Put(o.key, o.val); err != nil {
					return err
				}
			case opDelete:
				if err := bk.Delete(o.key); err != nil {
					return err
				}
			case opDeleteRange:
				c := bk.Cursor()
				for k, _ := c.Seek(o.key); k != nil && bytes.Compare(k, o.val) < 0; k, _ = c.Seek(o.key) {
					if err := c.Delete(); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
}

func (e *boltEngine) close() error { return e.db.Close() }
