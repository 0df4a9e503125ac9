"""Camera calibration objects with the official toolkit's API: dreifus-compatible ``Pose`` and ``Intrinsics``.

The official ``load_camera_calibration()`` returns dreifus (0.1.x) ``Pose``/``Intrinsics`` objects: ``(4, 4)`` /
``(3, 3)`` **float32** ndarray subclasses with methods such as ``invert()``, ``change_pose_type()``,
``get_look_direction()``, ``get_translation()``, ``.fx``/``.cx``, ``rescale()``. dreifus itself pulls in
opencv, pyvista and dearpygui, so this module re-implements the part users call with dreifus's semantics and
conventions (float32 storage, pose types, camera coordinate conventions, in-place defaults):

- :class:`Pose`: ``invert(inplace=False)``, ``change_pose_type(new, inplace=True)``,
  ``change_camera_coordinate_convention(new, inplace=True)`` (CAM_2_WORLD only, as dreifus),
  ``get_rotation_matrix()``, ``get_translation()`` (``Vec3``), ``get_look_direction()`` /
  ``get_up_direction()`` (CAM_2_WORLD only), ``get_euler_angles(order)``, ``get_quaternion()``,
  ``get_rodriguez_vector()``, ``set_translation``, ``set_rotation_matrix``, ``move``, ``scale``,
  ``negate_orientation_axis``, ``numpy()``, ``copy()``, ``from_euler``/``from_rodriguez``/``from_quaternion``,
  ``@`` between poses composes the pose types (``WORLD_2_CAM @ CAM_2_WORLD`` is ``CAM_2_CAM``).
- :class:`Intrinsics`: ``fx``/``fy``/``cx``/``cy``/``s`` (get and set), ``get_fovx(width)``/``get_fovy(height)``,
  ``rescale(scale_factor, scale_factor_y=None, inplace=True)``, ``crop(left, top, inplace=True)``,
  ``homogenize(invert=False)``, ``invert()``, ``numpy()``.
- :class:`Vec3`: ``x``/``y``/``z``, ``length()``, ``normalize()``, ``cross()``.

When dreifus is importable (the official toolkit's own dependency), :func:`make_pose` / :func:`make_intrinsics`
return real dreifus objects instead, built exactly as the official loader builds them, so that dreifus's own
functions (``dreifus.render.project``, ``dreifus.pyvista.add_camera_frustum``), which compare against dreifus's
enums and classes, work unchanged. ``NERSEMBLE_ZARR_DREIFUS=0`` forces this module's classes.
"""

from __future__ import annotations

import math
import os
from enum import Enum
from functools import lru_cache
from typing import Any, Optional, Sequence, Union

import numpy as np

__all__ = [
    "AxisDirection", "CameraCoordinateConvention", "Intrinsics", "Pose", "PoseType", "Vec3",
    "dreifus_available", "make_intrinsics", "make_pose", "pose_from_euler",
]

# ---------------------------------------------------------------------------------------------
# Enums (names and semantics of dreifus.camera)
# ---------------------------------------------------------------------------------------------


class AxisDirection(Enum):
    """A signed coordinate axis: ``axis_id`` 0/1/2, ``sign()`` ±1."""

    X = (1, 0, 0)
    NEG_X = (-1, 0, 0)
    Y = (0, 1, 0)
    NEG_Y = (0, -1, 0)
    Z = (0, 0, 1)
    NEG_Z = (0, 0, -1)

    def __init__(self, x: int, y: int, z: int) -> None:
        self.axis_id = int(np.abs(np.array([x, y, z])).argmax())

    def sign(self) -> int:
        return int(sum(self.value))


class PoseType(Enum):
    """What a pose maps: ``WORLD_2_CAM`` (extrinsics, the calibration files' type), ``CAM_2_WORLD``, ``CAM_2_CAM``."""

    CAM_2_WORLD = ("cam", "world")
    WORLD_2_CAM = ("world", "cam")
    CAM_2_CAM = ("cam", "cam")

    def __init__(self, from_space: str, to_space: str) -> None:
        self.from_space = from_space
        self.to_space = to_space

    def invert(self) -> PoseType:
        return {PoseType.CAM_2_WORLD: PoseType.WORLD_2_CAM, PoseType.WORLD_2_CAM: PoseType.CAM_2_WORLD}.get(self, PoseType.CAM_2_CAM)

    def __matmul__(self, other: PoseType) -> PoseType:
        if self.to_space != other.from_space:
            raise ValueError(f"Poses cannot be multiplied: {self.name} and {other.name}")
        for pose_type in PoseType:
            if pose_type.from_space == self.from_space and pose_type.to_space == other.to_space:
                return pose_type
        raise ValueError(f"Poses cannot be multiplied: {self.name} and {other.name} "
                         f"(would map {self.from_space} -> {other.to_space})")


class CameraCoordinateConvention(Enum):
    """Camera axes as (x, y, z) semantic directions; OpenCV is x right, y down, z forward (the calibration files')."""

    OPEN_CV = ("right", "down", "forward")
    OPEN_GL = ("right", "up", "backward")  # also Blender
    DIRECT_X = ("right", "up", "forward")  # also Unity
    PYTORCH_3D = ("left", "up", "forward")

    def __init__(self, x: str, y: str, z: str) -> None:
        self.x_direction, self.y_direction, self.z_direction = x, y, z
        self.up_direction = AxisDirection.Y if y == "up" else AxisDirection.NEG_Y
        self.forward_direction = AxisDirection.Z if z == "forward" else AxisDirection.NEG_Z


# ---------------------------------------------------------------------------------------------
# Vec3
# ---------------------------------------------------------------------------------------------


class Vec3(np.ndarray):
    """A ``(3,)`` float32 vector (dreifus ``Vec3``): ``x``/``y``/``z``, ``length()``, ``normalize()``, ``cross()``."""

    def __new__(cls, x: Any = None, y: Optional[float] = None, z: Optional[float] = None, dtype: Any = np.float32) -> Vec3:
        vec = super().__new__(cls, (3,), dtype=dtype)
        if x is not None and np.ndim(x) > 0:
            values = list(np.asarray(x).reshape(-1))
            values = values + [y] if len(values) == 2 else values
        else:
            values = [0 if v is None else v for v in (x, y, z)]
        vec[:] = values
        return vec

    x = property(lambda self: self[0].item(), lambda self, v: self.__setitem__(0, v))
    y = property(lambda self: self[1].item(), lambda self, v: self.__setitem__(1, v))
    z = property(lambda self: self[2].item(), lambda self, v: self.__setitem__(2, v))

    def length(self) -> float:
        return float(np.linalg.norm(self))

    def normalize(self) -> Vec3:
        return self / self.length()

    def cross(self, other: Any) -> Vec3:
        return Vec3(np.cross(self, other))


# ---------------------------------------------------------------------------------------------
# Pose
# ---------------------------------------------------------------------------------------------


def _member(enum: type[Enum], value: Any) -> Any:
    """``value`` as a member of ``enum``: ours, or dreifus's member of the same name (so code that imports the enums
    from dreifus works on these poses too)."""
    if isinstance(value, enum):
        return value
    name = getattr(value, "name", None)
    if name in enum.__members__:
        return enum[name]
    raise ValueError(f"expected a {enum.__name__} ({', '.join(enum.__members__)}), got {value!r}")


def _rotation() -> Any:
    from scipy.spatial.transform import Rotation

    return Rotation


def _is_rotation_matrix(m: np.ndarray) -> bool:
    """dreifus's test: orthonormal within 1e-5 and determinant 1 within 1e-8."""
    return bool(np.allclose(m @ m.T, np.eye(3), atol=1e-5) and np.isclose(np.linalg.det(m), 1, atol=1e-8))


class Pose(np.ndarray):
    """A ``(4, 4)`` float32 rigid transform with its pose type and camera coordinate convention (dreifus ``Pose``).

    ``Pose(matrix_4x4)``, ``Pose(rotation_3x3, translation_3)`` or ``Pose(rodrigues_3, translation_3)``;
    defaults as dreifus: ``camera_coordinate_convention=OPEN_CV``, ``pose_type=WORLD_2_CAM``. The calibration's
    ``world_2_cam[serial]`` are ``WORLD_2_CAM``/``OPEN_CV``; ``pose.invert()`` gives the ``CAM_2_WORLD`` pose whose
    translation is the camera centre in world coordinates (metres).
    """

    camera_coordinate_convention: CameraCoordinateConvention
    pose_type: PoseType
    _disable_rotation_check: bool = False

    def __new__(
        cls,
        matrix_or_rotation: Union[np.ndarray, Sequence[Any]] = np.eye(4),
        translation: Optional[Any] = None,
        camera_coordinate_convention: CameraCoordinateConvention = CameraCoordinateConvention.OPEN_CV,
        pose_type: PoseType = PoseType.WORLD_2_CAM,
        disable_rotation_check: bool = False,
    ) -> Pose:
        pose = super().__new__(cls, (4, 4), dtype=np.float32)
        pose.camera_coordinate_convention = _member(CameraCoordinateConvention, camera_coordinate_convention)
        pose.pose_type = _member(PoseType, pose_type)
        pose._disable_rotation_check = disable_rotation_check
        m = np.asarray(matrix_or_rotation)
        if m.shape == (4, 4):
            if translation is not None:
                raise ValueError("a full 4x4 pose was given: no translation may be given as well")
            if not (m[3, :] == [0, 0, 0, 1]).all():
                raise ValueError(f"the last row of a pose must be [0, 0, 0, 1], found {m[3, :]}")
            if not disable_rotation_check and not _is_rotation_matrix(m[:3, :3]):
                raise ValueError(f"the pose's 3x3 block is not a rotation matrix: {m[:3, :3]}")
            pose[:] = m
            return pose
        t = np.zeros(3) if translation is None else np.asarray(translation)
        if t.squeeze().shape != (3,):
            raise ValueError(f"a pose from a rotation needs a 3-vector translation, found shape {t.shape}")
        if m.shape == (3, 3):
            pose[:3, :3] = m
        elif m.shape in ((3,), (3, 1)):
            pose[:3, :3] = _rotation().from_rotvec(m.reshape(3).astype(np.float64)).as_matrix()
        else:
            raise ValueError(f"a pose is a 4x4 matrix, or a 3x3 rotation (or a 3-vector Rodrigues rotation) and a "
                             f"translation; found shape {m.shape}")
        pose[:3, 3] = t.squeeze()
        pose[3, :] = [0, 0, 0, 1]
        return pose

    def __array_finalize__(self, obj: Any) -> None:
        # views and copies (pose[:3, :3], np.linalg.inv(pose), ...) keep the pose's type and convention
        if obj is not None:
            self.camera_coordinate_convention = getattr(obj, "camera_coordinate_convention", CameraCoordinateConvention.OPEN_CV)
            self.pose_type = getattr(obj, "pose_type", PoseType.WORLD_2_CAM)
            self._disable_rotation_check = getattr(obj, "_disable_rotation_check", False)

    # -- constructors -----------------------------------------------------------------------------

    @staticmethod
    def from_euler(euler_angles: Any, translation: Any = (0.0, 0.0, 0.0), euler_mode: str = "XYZ",
                   camera_coordinate_convention: CameraCoordinateConvention = CameraCoordinateConvention.OPEN_CV,
                   pose_type: PoseType = PoseType.WORLD_2_CAM) -> Pose:
        """Rotation from Euler angles (radians; scipy's ``euler_mode``: upper case intrinsic, lower case extrinsic)."""
        return Pose(_rotation().from_euler(euler_mode, euler_angles).as_matrix(), translation,
                    camera_coordinate_convention=camera_coordinate_convention, pose_type=pose_type)

    @staticmethod
    def from_rodriguez(rodriguez_vector: Any, translation: Any = (0.0, 0.0, 0.0),
                       camera_coordinate_convention: CameraCoordinateConvention = CameraCoordinateConvention.OPEN_CV,
                       pose_type: PoseType = PoseType.WORLD_2_CAM) -> Pose:
        return Pose(np.asarray(rodriguez_vector, dtype=np.float64).reshape(3), translation,
                    camera_coordinate_convention=camera_coordinate_convention, pose_type=pose_type)

    @staticmethod
    def from_quaternion(quaternion: Any, translation: Any = (0.0, 0.0, 0.0),
                        camera_coordinate_convention: CameraCoordinateConvention = CameraCoordinateConvention.OPEN_CV,
                        pose_type: PoseType = PoseType.WORLD_2_CAM) -> Pose:
        """Rotation from a scalar-last quaternion ``(x, y, z, w)`` (scipy's order, as dreifus)."""
        return Pose(_rotation().from_quat(quaternion).as_matrix(), translation,
                    camera_coordinate_convention=camera_coordinate_convention, pose_type=pose_type)

    # -- getters ----------------------------------------------------------------------------------

    def get_rotation_matrix(self) -> np.ndarray:
        """The ``(3, 3)`` rotation block as a plain float32 array."""
        return np.asarray(self[:3, :3])

    def get_translation(self) -> Vec3:
        """The translation column; for a ``CAM_2_WORLD`` pose the camera centre in world coordinates."""
        return Vec3(self[:3, 3])

    def get_euler_angles(self, order: str) -> Vec3:
        return Vec3(_rotation().from_matrix(self.get_rotation_matrix()).as_euler(order))

    def get_rodriguez_vector(self) -> Vec3:
        return Vec3(_rotation().from_matrix(self.get_rotation_matrix()).as_rotvec())

    def get_quaternion(self) -> np.ndarray:
        """Scalar-last quaternion ``(x, y, z, w)`` float32."""
        return _rotation().from_matrix(self.get_rotation_matrix()).as_quat().astype(np.float32)

    def _axis(self, direction: AxisDirection, what: str) -> Vec3:
        if self.pose_type != PoseType.CAM_2_WORLD:
            raise AssertionError(f"{what} needs a CAM_2_WORLD pose (this one is {self.pose_type.name}): "
                                 "call .change_pose_type(PoseType.CAM_2_WORLD) or .invert() first")
        return direction.sign() * Vec3(self[:3, direction.axis_id])

    def get_look_direction(self) -> Vec3:
        """Viewing direction in world coordinates (CAM_2_WORLD poses only, as dreifus)."""
        return self._axis(self.camera_coordinate_convention.forward_direction, "get_look_direction()")

    def get_up_direction(self) -> Vec3:
        """Camera up direction in world coordinates (CAM_2_WORLD poses only, as dreifus)."""
        return self._axis(self.camera_coordinate_convention.up_direction, "get_up_direction()")

    # -- setters (in place) -----------------------------------------------------------------------

    def set_translation(self, x: Any = None, y: Optional[float] = None, z: Optional[float] = None) -> None:
        values = list(np.asarray(x).reshape(-1)) if x is not None and np.ndim(x) > 0 else [x, y, z]
        for i, v in enumerate(values):
            if v is not None:
                self[i, 3] = v

    def set_rotation_matrix(self, rotation_matrix: np.ndarray) -> None:
        if not self._disable_rotation_check and not _is_rotation_matrix(np.asarray(rotation_matrix)):
            raise ValueError(f"not a rotation matrix: {rotation_matrix}")
        self[:3, :3] = rotation_matrix

    def move(self, x: Any = None, y: Optional[float] = None, z: Optional[float] = None, inplace: bool = True) -> Pose:
        pose = self if inplace else self.copy()
        values = list(np.asarray(x).reshape(-1)) if x is not None and np.ndim(x) > 0 else [x, y, z]
        for i, v in enumerate(values):
            pose[i, 3] += 0 if v is None else v
        return pose

    def scale(self, scale: float) -> Pose:
        """Scales the translation in place (dreifus semantics)."""
        self[:3, 3] *= scale
        return self

    def negate_orientation_axis(self, axis: int) -> None:
        """Negates column ``axis`` of the rotation in place (changes the camera convention; CAM_2_WORLD poses)."""
        self[:3, axis] *= -1

    def set_rotation_euler(self, order: str, euler_x: Any = 0, euler_y: Optional[float] = None, euler_z: Optional[float] = None) -> None:
        angles = list(np.asarray(euler_x).reshape(-1)) if np.ndim(euler_x) > 0 else [euler_x, euler_y, euler_z]
        self[:3, :3] = _rotation().from_euler(order, [0 if a is None else a for a in angles]).as_matrix()

    def rotate_euler(self, order: str, euler_x: Any = 0, euler_y: Optional[float] = None, euler_z: Optional[float] = None,
                     inplace: bool = True) -> Pose:
        """Adds Euler angles to the pose's own (``get_euler_angles(order)`` + given), as dreifus."""
        pose = self if inplace else self.copy()
        angles = list(np.asarray(euler_x).reshape(-1)) if np.ndim(euler_x) > 0 else [euler_x, euler_y, euler_z]
        pose.set_rotation_euler(order, pose.get_euler_angles(order) + Vec3([0 if a is None else a for a in angles]))
        return pose

    def swap_axes(self, permutation: Sequence[Union[int, str]], inplace: bool = True) -> Pose:
        """Permutes/negates the pose's rows, e.g. ``['-x', 'y', 'z']`` (flips the world around the origin), as dreifus."""
        pose = self if inplace else self.copy()
        switcher = np.zeros((4, 4))
        for i, a in enumerate(permutation):
            axis = a if isinstance(a, int) else "xyz".index(a[-1])
            switcher[i, axis] = -1 if isinstance(a, str) and a.startswith("-") else 1
        switcher[3, 3] = 1
        pose[:, :] = switcher @ np.array(pose)
        return pose

    def look_at(self, at: Any, up: Any = (0.0, 0.0, 1.0)) -> None:
        """Rotates a CAM_2_WORLD OpenCV pose in place to look from its position at ``at`` with world ``up``, as dreifus."""
        if self.pose_type != PoseType.CAM_2_WORLD or self.camera_coordinate_convention != CameraCoordinateConvention.OPEN_CV:
            raise AssertionError("look_at() needs a CAM_2_WORLD pose in the OPEN_CV convention")
        eye = self.get_translation()
        z_axis = Vec3(Vec3(at) - eye).normalize()
        x_axis = Vec3(z_axis.cross(Vec3(up))).normalize()
        y_axis = -Vec3(Vec3(x_axis.cross(z_axis)).normalize())
        self.set_rotation_matrix(np.array([x_axis, y_axis, z_axis]).T)
        self.set_translation(eye)

    def calculate_rigid_transformation_to(self, other: Pose) -> Pose:
        """The CAM_2_CAM transform ``T`` with ``T @ self = other`` (both as CAM_2_WORLD), as dreifus."""
        source = self.change_pose_type(PoseType.CAM_2_WORLD, inplace=False)
        target = other.change_pose_type(PoseType.CAM_2_WORLD, inplace=False)
        return target @ source.invert()

    # -- conversions ------------------------------------------------------------------------------

    def invert(self, inplace: bool = False) -> Pose:
        """The inverse rigid transform ``[R^T, -R^T t]`` with the inverted pose type (float32 arithmetic, as dreifus)."""
        if self._disable_rotation_check:
            raise AssertionError("Cannot invert when no proper rotation matrix is used")
        rotation = self.get_rotation_matrix().T
        translation = -rotation @ self.get_translation()
        if inplace:
            self.set_rotation_matrix(rotation)
            self.set_translation(translation)
            self.pose_type = self.pose_type.invert()
            return self
        return Pose(rotation, translation, camera_coordinate_convention=self.camera_coordinate_convention,
                    pose_type=self.pose_type.invert())

    def change_pose_type(self, new_pose_type: PoseType, inplace: bool = True) -> Pose:
        """This pose as ``new_pose_type`` (CAM_2_WORLD or WORLD_2_CAM); in place by default, as dreifus."""
        new_pose_type = _member(PoseType, new_pose_type)
        types = {PoseType.CAM_2_WORLD, PoseType.WORLD_2_CAM}
        if self.pose_type not in types or new_pose_type not in types:
            raise AssertionError("pose types must be CAM_2_WORLD or WORLD_2_CAM")
        pose = self if inplace else self.copy()
        if pose.pose_type != new_pose_type:
            pose = pose.invert(inplace=inplace)
        return pose

    def change_camera_coordinate_convention(self, new_camera_coordinate_convention: CameraCoordinateConvention,
                                            inplace: bool = True) -> Pose:
        """Flip the camera axes to another convention (CAM_2_WORLD poses only, as dreifus); in place by default."""
        if self.pose_type != PoseType.CAM_2_WORLD:
            raise AssertionError("Camera coordinate conventions can only be changed on CAM_2_WORLD matrices")
        pose = self if inplace else self.copy()
        old, new = self.camera_coordinate_convention, _member(CameraCoordinateConvention, new_camera_coordinate_convention)
        for axis, (a, b) in enumerate(zip(old.value, new.value)):
            if a != b:
                pose.negate_orientation_axis(axis)
        pose.camera_coordinate_convention = new
        return pose

    def numpy(self) -> np.ndarray:
        """A plain ``(4, 4)`` float32 ndarray copy."""
        return np.array(self)

    def copy(self, order: Any = "C") -> Pose:
        pose = super().copy(order=order)
        pose.camera_coordinate_convention = self.camera_coordinate_convention
        pose.pose_type = self.pose_type
        pose._disable_rotation_check = self._disable_rotation_check
        return pose

    # -- operators --------------------------------------------------------------------------------

    def __matmul__(self, other: Any) -> Any:
        if isinstance(other, Pose):
            pose = super().__matmul__(other)
            pose.camera_coordinate_convention = self.camera_coordinate_convention
            pose.pose_type = self.pose_type @ other.pose_type
            return pose
        return np.array(self) @ other

    def __rmatmul__(self, other: Any) -> Any:
        return other @ np.array(self)

    def __repr__(self) -> str:
        return (f"{super().__repr__()}\n > camera_coordinate_convention: {self.camera_coordinate_convention.name}\n"
                f" > pose_type: {self.pose_type.name}")

    def __str__(self) -> str:
        return (f"{super().__str__()}\n > camera_coordinate_convention: {self.camera_coordinate_convention.name}\n"
                f" > pose_type: {self.pose_type.name}")

    def __reduce__(self) -> Any:  # pickles (DataLoader workers) keep the pose type and convention
        reconstruct, args, state = super().__reduce__()
        return reconstruct, args, state + ((self.camera_coordinate_convention, self.pose_type, self._disable_rotation_check),)

    def __setstate__(self, state: Any) -> None:
        self.camera_coordinate_convention, self.pose_type, self._disable_rotation_check = state[-1]
        super().__setstate__(state[:-1])


# ---------------------------------------------------------------------------------------------
# Intrinsics
# ---------------------------------------------------------------------------------------------


class Intrinsics(np.ndarray):
    """A ``(3, 3)`` float32 camera matrix ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]`` in pixels (dreifus ``Intrinsics``).

    ``Intrinsics(matrix_3x3)`` or ``Intrinsics(fx, fy, cx, cy, s)`` (``fy`` defaults to ``fx``, ``s`` to 0)."""

    def __new__(cls, matrix_or_fx: Any = np.eye(3), fy: Optional[float] = None, cx: Optional[float] = None,
                cy: Optional[float] = None, s: Optional[float] = None) -> Intrinsics:
        intrinsics = super().__new__(cls, (3, 3), dtype=np.float32)
        if isinstance(matrix_or_fx, (int, float, np.integer, np.floating)) and np.ndim(matrix_or_fx) == 0:
            if cx is None or cy is None:
                raise ValueError("Intrinsics from a focal length need cx and cy")
            intrinsics.fill(0)
            intrinsics[0, 0] = matrix_or_fx
            intrinsics[0, 1] = 0 if s is None else s
            intrinsics[0, 2] = cx
            intrinsics[1, 1] = matrix_or_fx if fy is None else fy
            intrinsics[1, 2] = cy
            intrinsics[2, 2] = 1
            return intrinsics
        m = np.asarray(matrix_or_fx)
        if m.shape != (3, 3) or any(v is not None for v in (fy, cx, cy, s)):
            raise ValueError(f"Intrinsics need a 3x3 matrix alone, or fx, cx and cy; found shape {m.shape}")
        intrinsics[:] = m
        return intrinsics

    fx = property(lambda self: self[0, 0].item(), lambda self, v: self.__setitem__((0, 0), v), doc="focal length x, pixels")
    fy = property(lambda self: self[1, 1].item(), lambda self, v: self.__setitem__((1, 1), v), doc="focal length y, pixels")
    cx = property(lambda self: self[0, 2].item(), lambda self, v: self.__setitem__((0, 2), v), doc="principal point x, pixels")
    cy = property(lambda self: self[1, 2].item(), lambda self, v: self.__setitem__((1, 2), v), doc="principal point y, pixels")
    s = property(lambda self: self[0, 1].item(), lambda self, v: self.__setitem__((0, 1), v), doc="skew")

    def get_fovx(self, width: float) -> float:
        """Horizontal field of view in radians for an image ``width`` pixels wide."""
        return 2 * math.atan(width / (2 * self.fx))

    def get_fovy(self, height: float) -> float:
        """Vertical field of view in radians for an image ``height`` pixels high."""
        return 2 * math.atan(height / (2 * self.fy))

    def rescale(self, scale_factor: float, scale_factor_y: Optional[float] = None, inplace: bool = True) -> Intrinsics:
        """Intrinsics of the image resized by ``scale_factor`` (``fx, cx *= sx``; ``fy, cy *= sy``); in place by
        default, as dreifus (pass ``inplace=False`` to keep the calibration unchanged)."""
        sy = scale_factor if scale_factor_y is None else scale_factor_y
        intrinsics = self if inplace else self.copy()
        intrinsics[0, 0] *= scale_factor
        intrinsics[1, 1] *= sy
        intrinsics[0, 2] *= scale_factor
        intrinsics[1, 2] *= sy
        return intrinsics

    def crop(self, crop_left: int = 0, crop_top: int = 0, inplace: bool = True) -> Intrinsics:
        """Intrinsics of the image cropped by ``crop_left``/``crop_top`` pixels; in place by default."""
        intrinsics = self if inplace else self.copy()
        intrinsics[0, 2] -= crop_left
        intrinsics[1, 2] -= crop_top
        return intrinsics

    def homogenize(self, invert: bool = False) -> np.ndarray:
        """``(4, 4)`` float64 with this matrix top-left (inverted with ``invert``)."""
        homogenized = np.eye(4)
        homogenized[:3, :3] = self
        return np.linalg.inv(homogenized) if invert else homogenized

    def invert(self) -> np.ndarray:
        return np.linalg.inv(np.array(self))

    def numpy(self) -> np.ndarray:
        """A plain ``(3, 3)`` float32 ndarray copy."""
        return np.array(self)

    def __matmul__(self, other: Any) -> Any:
        if isinstance(other, Intrinsics):
            return super().__matmul__(other)
        return np.array(self) @ other

    def __rmatmul__(self, other: Any) -> Any:
        return other @ np.array(self)


# ---------------------------------------------------------------------------------------------
# Factories: dreifus objects when dreifus is there, ours otherwise
# ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _dreifus() -> Any:
    if os.environ.get("NERSEMBLE_ZARR_DREIFUS", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    try:
        from dreifus.camera import CameraCoordinateConvention as DCCC
        from dreifus.camera import PoseType as DPoseType
        from dreifus.matrix import Intrinsics as DIntrinsics
        from dreifus.matrix import Pose as DPose
    except Exception:  # not installed, or its opencv/torch import fails here: ours
        return None
    return DPose, DIntrinsics, DPoseType, DCCC


def dreifus_available() -> bool:
    """True if :func:`make_pose`/:func:`make_intrinsics` return dreifus objects (dreifus imports, not disabled by
    ``NERSEMBLE_ZARR_DREIFUS=0``)."""
    return _dreifus() is not None


def make_pose(matrix: np.ndarray, pose_type: str = "WORLD_2_CAM", convention: str = "OPEN_CV") -> Any:
    """A ``(4, 4)`` matrix as a float32 ``Pose`` (dreifus's when available). ``pose_type``/``convention``: enum
    member names. Built without dreifus's rotation test (the store's calibration was read and checked when it was
    converted), then a normal pose (``invert()`` works)."""
    d = _dreifus()
    if d is not None:
        DPose, _, DPoseType, DCCC = d
        pose = DPose(np.asarray(matrix), camera_coordinate_convention=DCCC[convention], pose_type=DPoseType[pose_type],
                     disable_rotation_check=True)
    else:
        pose = Pose(matrix, camera_coordinate_convention=CameraCoordinateConvention[convention], pose_type=PoseType[pose_type],
                    disable_rotation_check=True)
    pose._disable_rotation_check = False
    return pose


def make_intrinsics(matrix: np.ndarray) -> Any:
    """A ``(3, 3)`` matrix as a float32 ``Intrinsics`` (dreifus's when available)."""
    d = _dreifus()
    return d[1](np.asarray(matrix)) if d is not None else Intrinsics(matrix)


def pose_from_euler(euler_angles: Any, translation: Any, euler_mode: str = "XYZ") -> Any:
    """``Pose.from_euler`` (dreifus's when available): float32, OPEN_CV, WORLD_2_CAM (dreifus's defaults)."""
    d = _dreifus()
    return (d[0] if d is not None else Pose).from_euler(euler_angles, translation, euler_mode)
