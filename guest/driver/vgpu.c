// SPDX-License-Identifier: GPL-2.0
/*
 * vgpu.ko: the guest driver of the vgpu-stub PCI device (1b36:10f0).
 *
 * Several processes of ordinary users share one device: each open() of
 * /dev/vgpuN claims one queue pair (ABI 1.2) and one fixed window of the data
 * area, mmap() maps exactly those two ranges of BAR2, the doorbell is an
 * ioctl, and poll()/read() sleep until the queue's completion ring has
 * entries. The device has one interrupt (MSI, else INTx) for every queue: the
 * handler wakes each queue whose cq_tail moved. Interface:
 * include/vgpu/driver.h; design: docs/guest-driver.md.
 *
 * Queue assignment. On a multi-queue device queue 0 stays with the driver:
 * its control page holds the queue table (the windows the mediator
 * enforces), so it is never mapped to a process. Queues 1..N-1 are handed
 * out, one per open file; the data area is split evenly between them (page
 * aligned). On a one-queue device (ABI 1.0/1.1, or queues=1) queue 0 and the
 * whole data area go to one open file at a time.
 *
 * Reclaim. When the last reference to an open file goes (close, exit, a
 * SIGKILL mid-request), its queue is quarantined until the mediator has
 * completed everything the process submitted (cq_tail and sq_head caught up
 * with the sq_tail it left). Only then are the window and the rings cleared
 * and the queue handed out again, so nothing of one process ever lands in
 * the next owner's memory. The ring indexes are never rewound (the mediator
 * keeps its own copies of them); the next owner adopts them with an empty
 * ring (cq_head = cq_tail = sq_head = sq_tail).
 *
 * Locking: vdev->lock (a mutex) protects the queue states, the list of open
 * files and vdev->dead; the interrupt handler reads only the rings and each
 * queue's cq_seen, which only it writes; vdev->irq_lock (a spinlock) the
 * queues' armed flags and the completion interrupt's mask (vgpu_arm()).
 * BAR0 and BAR2 stay mapped until the last reference to the device goes, so
 * a file that outlives a hot-unplug never touches an unmapped address; it
 * sees ENODEV.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/cdev.h>
#include <linux/device.h>
#include <linux/fs.h>
#include <linux/idr.h>
#include <linux/interrupt.h>
#include <linux/io.h>
#include <linux/jiffies.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/pci.h>
#include <linux/poll.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/version.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#include "vgpu/abi.h"
#include "vgpu/driver.h"

#define VGPU_RECLAIM_PERIOD	(HZ / 50)	/* quarantine re-check */
#define VGPU_KICK_PERIOD	HZ		/* doorbell for a quarantined queue */
#define VGPU_STALL_WARN		(5 * HZ)	/* first dmesg line */
#define VGPU_CORRUPT_SETTLE	(2 * HZ)	/* see vgpu_queue_quiet() */
#define VGPU_FAULT_BATCH	256		/* pages mapped per fault */

static unsigned int gid;
module_param(gid, uint, 0444);
MODULE_PARM_DESC(gid, "group of /dev/vgpuN (mode 0660), like a udev GROUP= rule");

enum vgpu_qstate {
	VGPU_Q_FREE,		/* ready for the next open() */
	VGPU_Q_OWNED,		/* an open file has it */
	VGPU_Q_QUARANTINE,	/* closed, the mediator not done with it yet */
	VGPU_Q_DRIVER,		/* queue 0 of a multi-queue device */
};

struct vgpu_queue {
	u32 index;
	enum vgpu_qstate state;
	u64 off;			/* BAR2 offset of ctrl + SQ + CQ */
	u64 win_off;			/* the data window */
	u64 win_len;
	wait_queue_head_t wq;
	u32 cq_seen;			/* interrupt handler only */
	bool armed;			/* a poller may sleep: irq_lock */
	/* quarantine bookkeeping */
	unsigned long since;
	unsigned long last_kick;
	unsigned long last_move;
	u32 last_cq;
	bool warned;
};

struct vgpu_device {
	struct device dev;		/* /sys/class/vgpu/vgpuN */
	struct cdev cdev;		/* /dev/vgpuN */
	struct pci_dev *pdev;
	void __iomem *regs;
	void __iomem *shm;
	resource_size_t shm_phys;
	u64 shm_size;
	u64 data_end;
	u32 nq;				/* queue pairs of the device */
	u32 first;			/* first queue handed to processes */
	int minor;
	int irq;
	bool msi;
	struct mutex lock;		/* queue states, files, dead */
	bool dead;			/* removed: no new use of the hardware */
	atomic_t link_seq;		/* link status changes seen */
	spinlock_t irq_lock;		/* queues' armed, cq_masked */
	bool cq_masked;			/* VGPU_IRQ_COMPLETION masked */
	struct delayed_work reclaim;
	struct list_head files;
	struct vgpu_queue q[VGPU_MAX_QUEUES];
};

struct vgpu_file {
	struct vgpu_device *vdev;
	struct vgpu_queue *q;
	struct file *filp;
	struct list_head node;
	int link_seq;
};

static dev_t vgpu_devt;
static struct class *vgpu_class;
static DEFINE_IDA(vgpu_ida);

/* ---- shared memory accessors ---------------------------------------------- */

#define VGPU_CTRL(field) offsetof(struct vgpu_shm_ctrl, field)

static u32 vgpu_ctrl_read(struct vgpu_device *vdev, struct vgpu_queue *q,
			  size_t field)
{
	return readl(vdev->shm + q->off + field);
}

static void vgpu_ctrl_write(struct vgpu_device *vdev, struct vgpu_queue *q,
			    size_t field, u32 val)
{
	writel(val, vdev->shm + q->off + field);
}

static bool vgpu_cq_pending(struct vgpu_device *vdev, struct vgpu_queue *q)
{
	return vgpu_ctrl_read(vdev, q, VGPU_CTRL(cq_tail)) !=
	       vgpu_ctrl_read(vdev, q, VGPU_CTRL(cq_head));
}

static void vgpu_kick(struct vgpu_device *vdev, struct vgpu_queue *q)
{
	/* The process's SQE and sq_tail stores precede the doorbell. */
	wmb();
	writel(q->index, vdev->regs + VGPU_REG_DOORBELL);
}

/*
 * Writes queue q's window into the queue table (queue 0's control page). On
 * a one-queue device the process owns that page: the entry is reset to
 * len 0 (the whole data area), whatever the previous owner wrote there.
 */
static void vgpu_qtable_set(struct vgpu_device *vdev, struct vgpu_queue *q)
{
	void __iomem *d = vdev->shm + VGPU_SHM_QTABLE_OFFSET +
			  q->index * sizeof(struct vgpu_queue_desc);
	u64 off = vdev->nq > 1 ? q->win_off : 0;
	u64 len = vdev->nq > 1 ? q->win_len : 0;

	writel(lower_32_bits(off), d);
	writel(upper_32_bits(off), d + 4);
	writel(lower_32_bits(len), d + 8);
	writel(upper_32_bits(len), d + 12);
	/* The window is in place before a request of the new owner. */
	wmb();
}

/* ---- interrupt -------------------------------------------------------------- */

/*
 * Completion interrupts only while someone may sleep on a queue: a process
 * that spins on its CQ (libvgpu does, briefly, before it sleeps) takes no
 * interrupt per completion. poll() and read() arm their queue before they
 * sleep; the handler disarms each queue it wakes and masks the cause when no
 * queue is armed any more. Unmasking a cause that is already pending raises
 * the interrupt at once (the device's MSI is an edge on status & ~mask), so
 * a completion posted while masked is not lost; the sleeper re-checks its CQ
 * after arming anyway. A poller that timed out stays armed until its next
 * doorbell: interrupts stay on meanwhile, which costs time, never a wakeup.
 */
static void vgpu_arm(struct vgpu_device *vdev, struct vgpu_queue *q, bool arm)
{
	unsigned long flags;

	spin_lock_irqsave(&vdev->irq_lock, flags);
	q->armed = arm;
	if (arm && vdev->cq_masked && !READ_ONCE(vdev->dead)) {
		vdev->cq_masked = false;
		writel(0, vdev->regs + VGPU_REG_IRQ_MASK);
	}
	spin_unlock_irqrestore(&vdev->irq_lock, flags);
}

static irqreturn_t vgpu_irq(int irq, void *data)
{
	struct vgpu_device *vdev = data;
	bool armed = false;
	u32 status, i;

	status = readl(vdev->regs + VGPU_REG_IRQ_STATUS);
	if (!status || status == U32_MAX)	/* not ours, or surprise removal */
		return IRQ_NONE;
	/* Ack first: a completion posted after this raises a new interrupt. */
	writel(status, vdev->regs + VGPU_REG_IRQ_ACK);
	if (status & VGPU_IRQ_LINK)
		atomic_inc(&vdev->link_seq);

	spin_lock(&vdev->irq_lock);
	for (i = 0; i < vdev->nq; i++) {
		struct vgpu_queue *q = &vdev->q[i];
		u32 tail = vgpu_ctrl_read(vdev, q, VGPU_CTRL(cq_tail));

		if (tail != q->cq_seen || (status & VGPU_IRQ_LINK)) {
			q->cq_seen = tail;
			q->armed = false;
			wake_up_interruptible_all(&q->wq);
		}
		armed |= q->armed;
	}
	if (!armed && !vdev->cq_masked) {
		vdev->cq_masked = true;
		writel(VGPU_IRQ_COMPLETION, vdev->regs + VGPU_REG_IRQ_MASK);
	}
	spin_unlock(&vdev->irq_lock);
	return IRQ_HANDLED;
}

/* ---- queue reclaim ---------------------------------------------------------- */

/*
 * True when the mediator has finished every request of the queue's previous
 * owner. Called with vdev->lock held on a quarantined queue.
 *
 * A valid ring (sq_tail at most a ring ahead of cq_tail) is done when
 * cq_tail and sq_head reach sq_tail: the mediator takes every entry it has
 * (it is rung again every second, in case the process died between
 * publishing sq_tail and the doorbell). A process can leave sq_tail corrupt;
 * the mediator then takes nothing more but still completes what it took, so
 * once cq_tail equals sq_head and has not moved for VGPU_CORRUPT_SETTLE with
 * the link up, sq_tail is brought back to it.
 */
static bool vgpu_queue_quiet(struct vgpu_device *vdev, struct vgpu_queue *q)
{
	u32 sq_tail = vgpu_ctrl_read(vdev, q, VGPU_CTRL(sq_tail));
	u32 sq_head = vgpu_ctrl_read(vdev, q, VGPU_CTRL(sq_head));
	u32 cq_tail = vgpu_ctrl_read(vdev, q, VGPU_CTRL(cq_tail));
	u32 link = readl(vdev->regs + VGPU_REG_LINK_STATUS);
	unsigned long now = jiffies;

	/*
	 * Completions of the dead owner are consumed here: the CQ never
	 * blocks the mediator from finishing its requests.
	 */
	vgpu_ctrl_write(vdev, q, VGPU_CTRL(cq_head), cq_tail);

	if (cq_tail != q->last_cq) {
		q->last_cq = cq_tail;
		q->last_move = now;
	}
	if (sq_tail == cq_tail && sq_head == cq_tail)
		return true;

	if (sq_tail - cq_tail > VGPU_SQ_ENTRIES) {
		if ((link & VGPU_LINK_UP) && sq_head == cq_tail &&
		    time_after(now, q->last_move + VGPU_CORRUPT_SETTLE)) {
			dev_warn(&vdev->dev,
				 "queue %u: ring left corrupt (sq_tail %u, cq_tail %u); rewound to %u\n",
				 q->index, sq_tail, cq_tail, cq_tail);
			vgpu_ctrl_write(vdev, q, VGPU_CTRL(sq_tail), cq_tail);
			return true;
		}
	} else if (time_after(now, q->last_kick + VGPU_KICK_PERIOD)) {
		q->last_kick = now;
		vgpu_kick(vdev, q);
	}

	if (!q->warned && time_after(now, q->since + VGPU_STALL_WARN)) {
		q->warned = true;
		if (link & VGPU_LINK_UP)
			dev_warn(&vdev->dev,
				 "queue %u: the mediator has not completed %u request(s) of a closed file after %u s; the queue stays quarantined until it does\n",
				 q->index, sq_tail - cq_tail, VGPU_STALL_WARN / HZ);
		else
			dev_warn(&vdev->dev,
				 "queue %u: link down with %u request(s) of a closed file outstanding; the queue stays quarantined until the mediator completes them\n",
				 q->index, sq_tail - cq_tail);
	}
	return false;
}

/* Clears what the previous owner left and frees the queue. Lock held. */
static void vgpu_queue_scrub(struct vgpu_device *vdev, struct vgpu_queue *q)
{
	u32 head = vgpu_ctrl_read(vdev, q, VGPU_CTRL(sq_head));

	/*
	 * exec_index is the host's, but nothing executes now; a value the
	 * previous owner left equal to sq_head (with EXEC_UNSAFE) would make
	 * a restarted mediator fail the next owner's first request.
	 */
	vgpu_ctrl_write(vdev, q, VGPU_CTRL(exec_index), head - 1);
	memset_io(vdev->shm + q->off + VGPU_SHM_SQ_OFFSET, 0,
		  VGPU_SHM_QUEUE_SIZE - VGPU_SHM_SQ_OFFSET);
	memset_io(vdev->shm + q->win_off, 0, q->win_len);
	vgpu_qtable_set(vdev, q);
	if (q->warned)
		dev_info(&vdev->dev, "queue %u: released after %u s of quarantine\n",
			 q->index, jiffies_to_msecs(jiffies - q->since) / 1000);
	q->state = VGPU_Q_FREE;
}

static void vgpu_quarantine(struct vgpu_device *vdev, struct vgpu_queue *q)
{
	q->state = VGPU_Q_QUARANTINE;
	q->since = jiffies;
	q->last_move = jiffies;
	q->last_kick = jiffies;
	q->last_cq = vgpu_ctrl_read(vdev, q, VGPU_CTRL(cq_tail));
	q->warned = false;
	vgpu_kick(vdev, q);
}

/* Frees every quarantined queue that is done; true if some remain. Locked. */
static bool vgpu_reclaim_locked(struct vgpu_device *vdev)
{
	bool more = false;
	u32 i;

	if (vdev->dead)
		return false;
	for (i = vdev->first; i < vdev->nq; i++) {
		struct vgpu_queue *q = &vdev->q[i];

		if (q->state != VGPU_Q_QUARANTINE)
			continue;
		if (vgpu_queue_quiet(vdev, q))
			vgpu_queue_scrub(vdev, q);
		else
			more = true;
	}
	return more;
}

static void vgpu_reclaim_work(struct work_struct *work)
{
	struct vgpu_device *vdev = container_of(to_delayed_work(work),
						struct vgpu_device, reclaim);
	bool more;

	mutex_lock(&vdev->lock);
	more = vgpu_reclaim_locked(vdev);
	mutex_unlock(&vdev->lock);
	if (more)
		schedule_delayed_work(&vdev->reclaim, VGPU_RECLAIM_PERIOD);
}

/* ---- file operations -------------------------------------------------------- */

static int vgpu_open(struct inode *inode, struct file *filp)
{
	struct vgpu_device *vdev = container_of(inode->i_cdev,
						struct vgpu_device, cdev);
	struct vgpu_queue *q = NULL;
	struct vgpu_file *f;
	u32 i;
	int ret;

	f = kzalloc(sizeof(*f), GFP_KERNEL);
	if (!f)
		return -ENOMEM;

	mutex_lock(&vdev->lock);
	if (vdev->dead) {
		ret = -ENODEV;
		goto err_unlock;
	}
	/* A queue whose owner just closed may be done by now. */
	vgpu_reclaim_locked(vdev);
	for (i = vdev->first; i < vdev->nq; i++) {
		if (vdev->q[i].state == VGPU_Q_FREE) {
			q = &vdev->q[i];
			break;
		}
	}
	if (!q) {
		ret = -EBUSY;
		goto err_unlock;
	}
	vgpu_qtable_set(vdev, q);
	q->state = VGPU_Q_OWNED;
	get_device(&vdev->dev);
	f->vdev = vdev;
	f->q = q;
	f->filp = filp;
	f->link_seq = atomic_read(&vdev->link_seq);
	list_add(&f->node, &vdev->files);
	mutex_unlock(&vdev->lock);

	filp->private_data = f;
	return nonseekable_open(inode, filp);

err_unlock:
	mutex_unlock(&vdev->lock);
	kfree(f);
	return ret;
}

static int vgpu_release(struct inode *inode, struct file *filp)
{
	struct vgpu_file *f = filp->private_data;
	struct vgpu_device *vdev = f->vdev;
	struct vgpu_queue *q = f->q;
	bool more = false;

	mutex_lock(&vdev->lock);
	list_del(&f->node);
	if (!vdev->dead) {
		vgpu_quarantine(vdev, q);
		more = vgpu_reclaim_locked(vdev);
	}
	mutex_unlock(&vdev->lock);
	if (more)
		schedule_delayed_work(&vdev->reclaim, VGPU_RECLAIM_PERIOD);
	kfree(f);
	put_device(&vdev->dev);
	return 0;
}

static bool vgpu_ready(struct vgpu_file *f)
{
	struct vgpu_device *vdev = f->vdev;

	return READ_ONCE(vdev->dead) || vgpu_cq_pending(vdev, f->q) ||
	       atomic_read(&vdev->link_seq) != f->link_seq;
}

static __poll_t vgpu_poll(struct file *filp, poll_table *wait)
{
	struct vgpu_file *f = filp->private_data;
	struct vgpu_device *vdev = f->vdev;
	__poll_t mask = 0;

	poll_wait(filp, &f->q->wq, wait);
	if (READ_ONCE(vdev->dead))
		return EPOLLERR | EPOLLHUP;
	/* Armed before the checks below: a later completion interrupts. */
	if (!vgpu_ready(f))
		vgpu_arm(vdev, f->q, true);
	if (vgpu_cq_pending(vdev, f->q))
		mask |= EPOLLIN | EPOLLRDNORM;
	if (atomic_read(&vdev->link_seq) != f->link_seq)
		mask |= EPOLLPRI;
	return mask;
}

static ssize_t vgpu_read(struct file *filp, char __user *buf, size_t count,
			 loff_t *ppos)
{
	struct vgpu_file *f = filp->private_data;
	struct vgpu_device *vdev = f->vdev;
	u32 link;
	int ret;

	if (count < sizeof(link))
		return -EINVAL;
	while (!vgpu_ready(f)) {
		if (filp->f_flags & O_NONBLOCK)
			return -EAGAIN;
		vgpu_arm(vdev, f->q, true);
		ret = wait_event_interruptible(f->q->wq, vgpu_ready(f));
		if (ret)
			return ret;
	}
	if (READ_ONCE(vdev->dead))
		return -ENODEV;
	f->link_seq = atomic_read(&vdev->link_seq);
	link = readl(vdev->regs + VGPU_REG_LINK_STATUS);
	if (copy_to_user(buf, &link, sizeof(link)))
		return -EFAULT;
	return sizeof(link);
}

static void vgpu_read_name(struct vgpu_device *vdev, u32 reg, char *out)
{
	u32 i;

	for (i = 0; i < VGPU_REG_NAME_LEN; i += 4) {
		__le32 v = cpu_to_le32(readl(vdev->regs + reg + i));

		memcpy(out + i, &v, 4);
	}
	out[VGPU_REG_NAME_LEN - 1] = '\0';
}

static long vgpu_ioctl_info(struct vgpu_file *f, void __user *arg)
{
	struct vgpu_device *vdev = f->vdev;
	struct vgpu_queue *q = f->q;
	struct vgpu_drv_info *info;
	long ret = 0;

	info = kzalloc(sizeof(*info), GFP_KERNEL);
	if (!info)
		return -ENOMEM;
	info->abi_version = readl(vdev->regs + VGPU_REG_VERSION);
	info->features = readl(vdev->regs + VGPU_REG_FEATURES);
	info->link_status = readl(vdev->regs + VGPU_REG_LINK_STATUS);
	info->queue = q->index;
	info->queues = vdev->nq;
	info->vm_id = readl(vdev->regs + VGPU_REG_VM_ID);
	info->priority = readl(vdev->regs + VGPU_REG_PRIORITY);
	info->weight = readl(vdev->regs + VGPU_REG_WEIGHT);
	info->session_id = readl(vdev->regs + VGPU_REG_SESSION_ID);
	info->backend = readl(vdev->regs + VGPU_REG_BACKEND);
	info->max_inflight = readl(vdev->regs + VGPU_REG_MAX_INFLIGHT);
	info->minor = vdev->minor;
	info->shm_size = vdev->shm_size;
	info->data_end = vdev->data_end;
	info->queue_off = q->off;
	info->queue_len = VGPU_SHM_QUEUE_SIZE;
	info->win_off = q->win_off;
	info->win_len = q->win_len;
	vgpu_read_name(vdev, VGPU_REG_VM_NAME, info->vm_name);
	vgpu_read_name(vdev, VGPU_REG_GPU_NAME, info->gpu_name);
	strscpy(info->pci_addr, pci_name(vdev->pdev), sizeof(info->pci_addr));
	f->link_seq = atomic_read(&vdev->link_seq);
	if (copy_to_user(arg, info, sizeof(*info)))
		ret = -EFAULT;
	kfree(info);
	return ret;
}

static long vgpu_ioctl(struct file *filp, unsigned int cmd, unsigned long arg)
{
	struct vgpu_file *f = filp->private_data;
	struct vgpu_device *vdev = f->vdev;

	if (READ_ONCE(vdev->dead))
		return -ENODEV;
	switch (cmd) {
	case VGPU_IOCTL_KICK:
		/* Not sleeping now: completions need no interrupt until it polls. */
		if (READ_ONCE(f->q->armed))
			vgpu_arm(vdev, f->q, false);
		vgpu_kick(vdev, f->q);
		return 0;
	case VGPU_IOCTL_LINK:
		return readl(vdev->regs + VGPU_REG_LINK_STATUS) &
		       (VGPU_LINK_UP | VGPU_LINK_GPU);
	case VGPU_IOCTL_INFO:
		return vgpu_ioctl_info(f, (void __user *)arg);
	default:
		return -ENOTTY;
	}
}

/* ---- mmap ------------------------------------------------------------------- */

static bool vgpu_range_in(u64 off, u64 len, u64 start, u64 size)
{
	return off >= start && len <= size && off - start <= size - len;
}

/*
 * Pages are inserted at fault time, under vdev->lock: once remove() has set
 * dead and zapped the mappings, no fault can map a page again (SIGBUS).
 */
static vm_fault_t vgpu_fault(struct vm_fault *vmf)
{
	struct vm_area_struct *vma = vmf->vma;
	struct vgpu_file *f = vma->vm_private_data;
	struct vgpu_device *vdev = f->vdev;
	unsigned long addr = vmf->address & PAGE_MASK;
	unsigned long end = vma->vm_end;
	unsigned long base = (vdev->shm_phys >> PAGE_SHIFT) + vma->vm_pgoff;
	vm_fault_t ret = VM_FAULT_SIGBUS;

	if (end - addr > VGPU_FAULT_BATCH * PAGE_SIZE)
		end = addr + VGPU_FAULT_BATCH * PAGE_SIZE;
	mutex_lock(&vdev->lock);
	if (vdev->dead)
		goto out;
	ret = vmf_insert_pfn(vma, addr,
			     base + ((addr - vma->vm_start) >> PAGE_SHIFT));
	/* The pages after it too: a fault per page is slow in a TCG guest. */
	for (addr += PAGE_SIZE; ret == VM_FAULT_NOPAGE && addr < end;
	     addr += PAGE_SIZE) {
		if (vmf_insert_pfn(vma, addr,
				   base + ((addr - vma->vm_start) >> PAGE_SHIFT)) !=
		    VM_FAULT_NOPAGE)
			break;
	}
out:
	mutex_unlock(&vdev->lock);
	return ret;
}

static const struct vm_operations_struct vgpu_vm_ops = {
	.fault = vgpu_fault,
};

static int vgpu_mmap(struct file *filp, struct vm_area_struct *vma)
{
	struct vgpu_file *f = filp->private_data;
	struct vgpu_device *vdev = f->vdev;
	struct vgpu_queue *q = f->q;
	u64 len = vma->vm_end - vma->vm_start;
	u64 off;

	if (READ_ONCE(vdev->dead))
		return -ENODEV;
	if (!(vma->vm_flags & VM_SHARED) || (vma->vm_flags & VM_EXEC))
		return -EINVAL;
	if (vma->vm_pgoff > vdev->shm_size >> PAGE_SHIFT)
		return -EINVAL;
	off = (u64)vma->vm_pgoff << PAGE_SHIFT;
	if (!vgpu_range_in(off, len, q->off, VGPU_SHM_QUEUE_SIZE) &&
	    !vgpu_range_in(off, len, q->win_off, q->win_len))
		return -EINVAL;

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
	vm_flags_set(vma, VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP);
	vm_flags_clear(vma, VM_MAYEXEC);
#else
	vma->vm_flags |= VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP;
	vma->vm_flags &= ~VM_MAYEXEC;
#endif
	/* As the sysfs resource files map BARs (the uio path). */
	vma->vm_page_prot = pgprot_noncached(vma->vm_page_prot);
	vma->vm_ops = &vgpu_vm_ops;
	vma->vm_private_data = f;
	return 0;
}

static const struct file_operations vgpu_fops = {
	.owner		= THIS_MODULE,
	.open		= vgpu_open,
	.release	= vgpu_release,
	.read		= vgpu_read,
	.poll		= vgpu_poll,
	.unlocked_ioctl	= vgpu_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.mmap		= vgpu_mmap,
	.llseek		= no_llseek,
};

/* ---- sysfs: /sys/class/vgpu/vgpuN/ ------------------------------------------ */

static struct vgpu_device *to_vgpu(struct device *dev)
{
	return container_of(dev, struct vgpu_device, dev);
}

#define VGPU_REG_ATTR(name, reg)					\
static ssize_t name##_show(struct device *dev,				\
			   struct device_attribute *attr, char *buf)	\
{									\
	return sysfs_emit(buf, "%u\n", readl(to_vgpu(dev)->regs + (reg))); \
}									\
static DEVICE_ATTR_RO(name)

VGPU_REG_ATTR(vm_id, VGPU_REG_VM_ID);
VGPU_REG_ATTR(priority, VGPU_REG_PRIORITY);
VGPU_REG_ATTR(weight, VGPU_REG_WEIGHT);
VGPU_REG_ATTR(session_id, VGPU_REG_SESSION_ID);
VGPU_REG_ATTR(max_inflight, VGPU_REG_MAX_INFLIGHT);

static ssize_t link_show(struct device *dev, struct device_attribute *attr,
			 char *buf)
{
	u32 link = readl(to_vgpu(dev)->regs + VGPU_REG_LINK_STATUS);

	return sysfs_emit(buf, "%s\n", !(link & VGPU_LINK_UP) ? "down" :
			  (link & VGPU_LINK_GPU) ? "up gpu" : "up");
}
static DEVICE_ATTR_RO(link);

static ssize_t backend_show(struct device *dev, struct device_attribute *attr,
			    char *buf)
{
	static const char * const names[] = { "none", "cpu", "cuda" };
	u32 b = readl(to_vgpu(dev)->regs + VGPU_REG_BACKEND);

	return sysfs_emit(buf, "%s\n", b < ARRAY_SIZE(names) ? names[b] : "unknown");
}
static DEVICE_ATTR_RO(backend);

static ssize_t vm_name_show(struct device *dev, struct device_attribute *attr,
			    char *buf)
{
	char name[VGPU_REG_NAME_LEN];

	vgpu_read_name(to_vgpu(dev), VGPU_REG_VM_NAME, name);
	return sysfs_emit(buf, "%s\n", name);
}
static DEVICE_ATTR_RO(vm_name);

static ssize_t gpu_name_show(struct device *dev, struct device_attribute *attr,
			     char *buf)
{
	char name[VGPU_REG_NAME_LEN];

	vgpu_read_name(to_vgpu(dev), VGPU_REG_GPU_NAME, name);
	return sysfs_emit(buf, "%s\n", name);
}
static DEVICE_ATTR_RO(gpu_name);

static ssize_t abi_version_show(struct device *dev,
				struct device_attribute *attr, char *buf)
{
	u32 v = readl(to_vgpu(dev)->regs + VGPU_REG_VERSION);

	return sysfs_emit(buf, "%u.%u\n", v >> 16, v & 0xffff);
}
static DEVICE_ATTR_RO(abi_version);

static ssize_t queues_total_show(struct device *dev,
				 struct device_attribute *attr, char *buf)
{
	struct vgpu_device *vdev = to_vgpu(dev);

	return sysfs_emit(buf, "%u\n", vdev->nq - vdev->first);
}
static DEVICE_ATTR_RO(queues_total);

static unsigned int vgpu_count(struct vgpu_device *vdev, enum vgpu_qstate s)
{
	unsigned int i, n = 0;

	mutex_lock(&vdev->lock);
	for (i = vdev->first; i < vdev->nq; i++)
		n += vdev->q[i].state == s;
	mutex_unlock(&vdev->lock);
	return n;
}

static ssize_t queues_in_use_show(struct device *dev,
				  struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n", vgpu_count(to_vgpu(dev), VGPU_Q_OWNED));
}
static DEVICE_ATTR_RO(queues_in_use);

static ssize_t queues_quarantined_show(struct device *dev,
				       struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n",
			  vgpu_count(to_vgpu(dev), VGPU_Q_QUARANTINE));
}
static DEVICE_ATTR_RO(queues_quarantined);

static ssize_t window_bytes_show(struct device *dev,
				 struct device_attribute *attr, char *buf)
{
	struct vgpu_device *vdev = to_vgpu(dev);

	return sysfs_emit(buf, "%llu\n", vdev->q[vdev->first].win_len);
}
static DEVICE_ATTR_RO(window_bytes);

static struct attribute *vgpu_attrs[] = {
	&dev_attr_vm_id.attr,
	&dev_attr_vm_name.attr,
	&dev_attr_priority.attr,
	&dev_attr_weight.attr,
	&dev_attr_link.attr,
	&dev_attr_session_id.attr,
	&dev_attr_backend.attr,
	&dev_attr_gpu_name.attr,
	&dev_attr_max_inflight.attr,
	&dev_attr_abi_version.attr,
	&dev_attr_queues_total.attr,
	&dev_attr_queues_in_use.attr,
	&dev_attr_queues_quarantined.attr,
	&dev_attr_window_bytes.attr,
	NULL,
};
ATTRIBUTE_GROUPS(vgpu);

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 2, 0)
static char *vgpu_devnode(const struct device *dev, umode_t *mode,
			  kuid_t *uid, kgid_t *gidp)
#else
static char *vgpu_devnode(struct device *dev, umode_t *mode,
			  kuid_t *uid, kgid_t *gidp)
#endif
{
	if (mode)
		*mode = 0660;
	if (gidp && gid && gid_valid(make_kgid(&init_user_ns, gid)))
		*gidp = make_kgid(&init_user_ns, gid);
	return NULL;
}

static const struct device_type vgpu_type = {
	.name = "vgpu",
	.devnode = vgpu_devnode,
};

/* ---- PCI -------------------------------------------------------------------- */

static void vgpu_dev_release(struct device *dev)
{
	struct vgpu_device *vdev = to_vgpu(dev);

	if (vdev->shm)
		pci_iounmap(vdev->pdev, vdev->shm);
	if (vdev->regs)
		pci_iounmap(vdev->pdev, vdev->regs);
	if (vdev->minor >= 0)
		ida_free(&vgpu_ida, vdev->minor);
	pci_dev_put(vdev->pdev);
	kfree(vdev);
}

/* Checks the registers and lays out the queues and windows. */
static int vgpu_setup_queues(struct vgpu_device *vdev)
{
	struct pci_dev *pdev = vdev->pdev;
	u64 reg_shm, reg_end, win, m;
	u32 ver, i;

	if (readl(vdev->regs + VGPU_REG_MAGIC) != VGPU_MAGIC) {
		pci_err(pdev, "bad magic %#x\n",
			readl(vdev->regs + VGPU_REG_MAGIC));
		return -ENODEV;
	}
	ver = readl(vdev->regs + VGPU_REG_VERSION);
	if (ver >> 16 != VGPU_ABI_VERSION_MAJOR ||
	    readl(vdev->regs + VGPU_REG_SQ_ENTRIES) != VGPU_SQ_ENTRIES ||
	    readl(vdev->regs + VGPU_REG_CQ_ENTRIES) != VGPU_CQ_ENTRIES ||
	    readl(vdev->regs + VGPU_REG_DATA_OFFSET) != VGPU_SHM_DATA_OFFSET) {
		pci_err(pdev, "ABI %u.%u or ring geometry not supported (driver speaks %u.%u)\n",
			ver >> 16, ver & 0xffff, VGPU_ABI_VERSION_MAJOR,
			VGPU_ABI_VERSION_MINOR);
		return -ENODEV;
	}
	reg_shm = (u64)readl(vdev->regs + VGPU_REG_SHM_SIZE_HI) << 32 |
		  readl(vdev->regs + VGPU_REG_SHM_SIZE_LO);
	if (reg_shm && reg_shm < vdev->shm_size)
		vdev->shm_size = reg_shm;
	vdev->shm_size &= PAGE_MASK;
	if (vdev->shm_size < VGPU_SHM_MIN_SIZE ||
	    vdev->shm_size > VGPU_SHM_MAX_SIZE) {
		pci_err(pdev, "shared memory of %llu bytes outside the ABI's range\n",
			vdev->shm_size);
		return -ENODEV;
	}

	vdev->nq = readl(vdev->regs + VGPU_REG_QUEUES);
	if (!vdev->nq)
		vdev->nq = 1;
	if (vdev->nq > VGPU_MAX_QUEUES) {
		pci_err(pdev, "%u queue pairs, at most %u\n", vdev->nq,
			VGPU_MAX_QUEUES);
		return -ENODEV;
	}
	vdev->first = vdev->nq > 1 ? 1 : 0;
	vdev->data_end = VGPU_SHM_DATA_END(vdev->shm_size, vdev->nq);
	reg_end = (u64)readl(vdev->regs + VGPU_REG_DATA_END_HI) << 32 |
		  readl(vdev->regs + VGPU_REG_DATA_END_LO);
	if (reg_end && reg_end != vdev->data_end) {
		pci_err(pdev, "data area ends at %#llx, the ABI says %#llx\n",
			reg_end, vdev->data_end);
		return -ENODEV;
	}
	m = vdev->nq - vdev->first;
	if (vdev->data_end < VGPU_SHM_DATA_OFFSET + m * PAGE_SIZE) {
		pci_err(pdev, "no room for %llu data windows\n", m);
		return -ENODEV;
	}
	win = div64_u64(vdev->data_end - VGPU_SHM_DATA_OFFSET, m) & PAGE_MASK;

	for (i = 0; i < vdev->nq; i++) {
		struct vgpu_queue *q = &vdev->q[i];

		q->index = i;
		q->off = i ? VGPU_SHM_QUEUE_OFFSET(vdev->shm_size, i) : 0;
		init_waitqueue_head(&q->wq);
		if (i < vdev->first) {
			q->state = VGPU_Q_DRIVER;
			continue;
		}
		q->win_off = VGPU_SHM_DATA_OFFSET + (i - vdev->first) * win;
		q->win_len = win;
		q->cq_seen = vgpu_ctrl_read(vdev, q, VGPU_CTRL(cq_tail));
		/*
		 * Whatever a previous driver instance (or the uio path) left in
		 * flight must finish before anyone gets the queue.
		 */
		vgpu_quarantine(vdev, q);
	}
	return 0;
}

static int vgpu_setup_irq(struct vgpu_device *vdev)
{
	struct pci_dev *pdev = vdev->pdev;
	int ret;

	ret = pci_alloc_irq_vectors(pdev, 1, 1, PCI_IRQ_MSI | PCI_IRQ_LEGACY);
	if (ret < 0)
		return ret;
	vdev->msi = pdev->msi_enabled;
	vdev->irq = pci_irq_vector(pdev, 0);
	ret = request_irq(vdev->irq, vgpu_irq, vdev->msi ? 0 : IRQF_SHARED,
			  KBUILD_MODNAME, vdev);
	if (ret) {
		pci_free_irq_vectors(pdev);
		return ret;
	}
	writel(VGPU_IRQ_COMPLETION | VGPU_IRQ_LINK,
	       vdev->regs + VGPU_REG_IRQ_ACK);
	writel(0, vdev->regs + VGPU_REG_IRQ_MASK);
	return 0;
}

static int vgpu_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct vgpu_device *vdev;
	char name[VGPU_REG_NAME_LEN];
	u32 link;
	int ret;

	/* The id table cannot match it; never drive an NVIDIA function. */
	if (pdev->vendor == VGPU_PCI_FORBIDDEN_VENDOR)
		return -ENODEV;

	vdev = kzalloc(sizeof(*vdev), GFP_KERNEL);
	if (!vdev)
		return -ENOMEM;
	vdev->pdev = pci_dev_get(pdev);
	vdev->minor = -1;
	mutex_init(&vdev->lock);
	spin_lock_init(&vdev->irq_lock);
	INIT_LIST_HEAD(&vdev->files);
	INIT_DELAYED_WORK(&vdev->reclaim, vgpu_reclaim_work);
	device_initialize(&vdev->dev);
	vdev->dev.release = vgpu_dev_release;

	ret = ida_alloc_max(&vgpu_ida, VGPU_DRV_MAX_DEVICES - 1, GFP_KERNEL);
	if (ret < 0)
		goto err_put;
	vdev->minor = ret;

	ret = pci_enable_device_mem(pdev);
	if (ret)
		goto err_put;
	ret = pci_request_regions(pdev, KBUILD_MODNAME);
	if (ret)
		goto err_disable;
	/* MSI is a write by the device. */
	pci_set_master(pdev);
	vdev->regs = pci_iomap(pdev, VGPU_BAR_REGS, VGPU_REGS_SIZE);
	vdev->shm = pci_iomap(pdev, VGPU_BAR_SHM, 0);
	if (!vdev->regs || !vdev->shm ||
	    pci_resource_len(pdev, VGPU_BAR_REGS) < VGPU_REGS_SIZE) {
		ret = -ENOMEM;
		goto err_regions;
	}
	vdev->shm_phys = pci_resource_start(pdev, VGPU_BAR_SHM);
	vdev->shm_size = pci_resource_len(pdev, VGPU_BAR_SHM);

	ret = vgpu_setup_queues(vdev);
	if (ret)
		goto err_regions;
	ret = vgpu_setup_irq(vdev);
	if (ret)
		goto err_regions;

	/* Clear what earlier owners left before the first open(). */
	mutex_lock(&vdev->lock);
	vgpu_reclaim_locked(vdev);
	mutex_unlock(&vdev->lock);
	schedule_delayed_work(&vdev->reclaim, 0);

	cdev_init(&vdev->cdev, &vgpu_fops);
	vdev->cdev.owner = THIS_MODULE;
	vdev->dev.devt = MKDEV(MAJOR(vgpu_devt), vdev->minor);
	vdev->dev.class = vgpu_class;
	vdev->dev.type = &vgpu_type;
	vdev->dev.parent = &pdev->dev;
	vdev->dev.groups = vgpu_groups;
	ret = dev_set_name(&vdev->dev, VGPU_DRV_NAME "%d", vdev->minor);
	if (ret)
		goto err_irq;
	ret = cdev_device_add(&vdev->cdev, &vdev->dev);
	if (ret)
		goto err_irq;
	pci_set_drvdata(pdev, vdev);

	link = readl(vdev->regs + VGPU_REG_LINK_STATUS);
	vgpu_read_name(vdev, VGPU_REG_VM_NAME, name);
	dev_info(&vdev->dev,
		 "%s: vm %u \"%s\", priority %u, weight %u, ABI %u.%u, %u queue pair(s), %u for processes with %llu KiB windows, link %s, %s\n",
		 pci_name(pdev), readl(vdev->regs + VGPU_REG_VM_ID), name,
		 readl(vdev->regs + VGPU_REG_PRIORITY),
		 readl(vdev->regs + VGPU_REG_WEIGHT),
		 readl(vdev->regs + VGPU_REG_VERSION) >> 16,
		 readl(vdev->regs + VGPU_REG_VERSION) & 0xffff, vdev->nq,
		 vdev->nq - vdev->first, vdev->q[vdev->first].win_len >> 10,
		 (link & VGPU_LINK_UP) ? "up" : "down",
		 vdev->msi ? "MSI" : "INTx");
	return 0;

err_irq:
	mutex_lock(&vdev->lock);
	vdev->dead = true;
	mutex_unlock(&vdev->lock);
	cancel_delayed_work_sync(&vdev->reclaim);
	writel(VGPU_IRQ_COMPLETION | VGPU_IRQ_LINK,
	       vdev->regs + VGPU_REG_IRQ_MASK);
	free_irq(vdev->irq, vdev);
	pci_free_irq_vectors(pdev);
err_regions:
	pci_release_regions(pdev);
err_disable:
	pci_disable_device(pdev);
err_put:
	put_device(&vdev->dev);
	return ret;
}

static void vgpu_remove(struct pci_dev *pdev)
{
	struct vgpu_device *vdev = pci_get_drvdata(pdev);
	unsigned int busy = 0, i;
	struct vgpu_file *f;

	/* No new open(); sysfs readers are drained. */
	cdev_device_del(&vdev->cdev, &vdev->dev);

	mutex_lock(&vdev->lock);
	vdev->dead = true;
	/* Open files keep their fd but lose the device's pages (SIGBUS). */
	list_for_each_entry(f, &vdev->files, node)
		unmap_mapping_range(f->filp->f_mapping, 0, 0, 1);
	for (i = vdev->first; i < vdev->nq; i++)
		busy += vdev->q[i].state != VGPU_Q_FREE;
	mutex_unlock(&vdev->lock);
	cancel_delayed_work_sync(&vdev->reclaim);

	writel(VGPU_IRQ_COMPLETION | VGPU_IRQ_LINK,
	       vdev->regs + VGPU_REG_IRQ_MASK);
	free_irq(vdev->irq, vdev);
	pci_free_irq_vectors(pdev);
	for (i = 0; i < vdev->nq; i++)
		wake_up_interruptible_all(&vdev->q[i].wq);
	pci_release_regions(pdev);
	pci_disable_device(pdev);
	pci_info(pdev, "%s: removed with %u queue(s) open or quarantined\n",
		 dev_name(&vdev->dev), busy);
	put_device(&vdev->dev);
}

static const struct pci_device_id vgpu_ids[] = {
	{ PCI_DEVICE(VGPU_PCI_VENDOR_ID, VGPU_PCI_DEVICE_ID) },
	{ }
};
MODULE_DEVICE_TABLE(pci, vgpu_ids);

static struct pci_driver vgpu_driver = {
	.name		= KBUILD_MODNAME,
	.id_table	= vgpu_ids,
	.probe		= vgpu_probe,
	.remove		= vgpu_remove,
};

static int __init vgpu_init(void)
{
	int ret;

	ret = alloc_chrdev_region(&vgpu_devt, 0, VGPU_DRV_MAX_DEVICES,
				  VGPU_DRV_NAME);
	if (ret)
		return ret;
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0)
	vgpu_class = class_create(VGPU_DRV_NAME);
#else
	vgpu_class = class_create(THIS_MODULE, VGPU_DRV_NAME);
#endif
	if (IS_ERR(vgpu_class)) {
		ret = PTR_ERR(vgpu_class);
		goto err_region;
	}
	ret = pci_register_driver(&vgpu_driver);
	if (ret)
		goto err_class;
	return 0;

err_class:
	class_destroy(vgpu_class);
err_region:
	unregister_chrdev_region(vgpu_devt, VGPU_DRV_MAX_DEVICES);
	return ret;
}

static void __exit vgpu_exit(void)
{
	pci_unregister_driver(&vgpu_driver);
	class_destroy(vgpu_class);
	unregister_chrdev_region(vgpu_devt, VGPU_DRV_MAX_DEVICES);
}

module_init(vgpu_init);
module_exit(vgpu_exit);

MODULE_DESCRIPTION("vgpu-stub guest driver: a queue pair per open file");
MODULE_LICENSE("GPL");
